/**
 * The Dockerfile frontend's public surface: text → AST, and BuildKit's word expansion. Pure.
 *
 *   parseDockerfile(text, { file })          AST (ast.ts) or KilnError('PARSE') at file:line:column
 *   expandWord(word, lookup, { escape })     one word, quotes removed (ENV, WORKDIR, COPY…)
 *   expandWords(word, lookup, …)             split into fields (EXPOSE)
 *   expandHeredoc(body, lookup)              a COPY/ADD heredoc body (unquoted delimiter)
 *   expandInstruction(ins, lookup, …)        every word BuildKit expands in one instruction
 *   expandMount(spec, lookup, …)             one RUN --mount string, each value expanded
 *   parseMount(spec, { lenient | expand })   a --mount string → MountSpec (MountError)
 *   parsePortSpecs(ports) / parseSignal(s)   EXPOSE / STOPSIGNAL values, BuildKit's checks
 */
export * from './ast.js';
export { parseDockerfile, type ParseOptions, MAX_DOCKERFILE_BYTES, tooBig } from './parser.js';
export {
  expandWord,
  expandWords,
  expandHeredoc,
  referencedNames,
  parseHeredocMarker,
  rawWords,
  ExpansionError,
  type Lookup,
  type ExpandOptions,
  type HeredocMarker,
} from './expand.js';
export { expandInstruction, expandMount, type ExpandInstructionOptions } from './expand-instruction.js';
export { parseMount, MountError, type ParseMountOptions } from './mounts.js';
export { splitWords, splitWhitespace, classifyJSON, parseJSONArray, parseDuration, parseRAMInBytes } from './words.js';
export { parsePortSpecs, parseSignal } from './values.js';
export { checkSyntax, checkDirective, type SyntaxVerdict } from './syntax.js';
