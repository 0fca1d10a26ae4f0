/** The Dockerfile frontend's public surface: text → AST, and word expansion. Pure. */
export * from './ast.js';
export { parseDockerfile, type ParseOptions } from './parser.js';
export { expandWord, expandWords, referencedNames, ExpansionError, type Lookup } from './expand.js';
export { parseMount } from './mounts.js';
export { splitWords, parseJSONArray, parseDuration } from './words.js';
