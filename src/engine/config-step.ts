/**
 * The instructions that only change the image config, as BuildKit's dispatchers do: ENV, LABEL,
 * ARG, WORKDIR, USER, EXPOSE, VOLUME, CMD, ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD,
 * MAINTAINER. A pure function of the stage's config state and the expanded instruction
 * (expand-step.ts) to the new state and the history entry BuildKit writes for it (ONBUILD: none).
 * No I/O: WORKDIR's directory is made by workdir-step.ts, the stage's variables (ENV, ARG) are
 * the walker's (engine.ts).
 */
import * as path from 'node:path';
import { parsePortSpecs, type CommandForm } from '../dockerfile/index.js';
import { type ContainerConfig, type HistoryEntry, type ImageConfig } from '../image/index.js';
import { KilnError, type ErrorPlace } from '../util/index.js';
import type { ExpandedInstruction } from './expand-step.js';
import { goDuration, goList, goQuoteList } from './history.js';

/** What config instructions read and change in a stage. */
export interface ConfigState {
  /** The image config (its history included). */
  config: ImageConfig;
  /** Set when CMD was given in this stage: ENTRYPOINT then keeps it. */
  cmdSet: boolean;
  /** SHELL: the shell form's prefix of RUN, CMD and ENTRYPOINT. */
  shell: string[];
  /** ARGs declared in this stage (and the stages it is based on), in order: RUN's history shows them. */
  argNames: string[];
}

export type ConfigInstruction = Exclude<ExpandedInstruction, { kind: 'RUN' | 'COPY' | 'ADD' | 'FROM' }>;

export function isConfigInstruction(ins: ExpandedInstruction): ins is ConfigInstruction {
  return ins.kind !== 'RUN' && ins.kind !== 'COPY' && ins.kind !== 'ADD' && ins.kind !== 'FROM';
}

export interface ConfigStepResult {
  /** The new state (the input is not changed); its history does not hold `history` yet. */
  state: ConfigState;
  /** The step's history entry (empty_layer: WORKDIR's is not when it makes a directory); none for ONBUILD. */
  history?: HistoryEntry;
}

export interface ConfigStepOptions {
  /** The history entry's time (SOURCE_DATE_EPOCH's, else now), ISO 8601. */
  created: string;
  /** Where a rejected value (EXPOSE) points. */
  place: ErrorPlace;
}

/** BuildKit's result of one config instruction. */
export function applyConfig(state: ConfigState, ins: ConfigInstruction, o: ConfigStepOptions): ConfigStepResult {
  const next = structuredClone(state);
  const c = (): ContainerConfig => (next.config.config ??= {});
  const entry = (createdBy: string): ConfigStepResult => ({ state: next, history: historyEntry(o.created, createdBy) });
  // `CMD []` and `ENTRYPOINT []` unset the value (null), as BuildKit's nil slice: docker treats
  // an empty list otherwise when a user passes arguments.
  const cmdForm = (f: CommandForm) =>
    f.form === 'exec' ? (f.args.length ? f.args : null) : [...next.shell, f.command];
  switch (ins.kind) {
    case 'ARG': {
      // History shows each ARG with the value it took (a --build-arg, the expanded default, the
      // global or automatic value), as BuildKit.
      const parts = ins.args.map((a, i) => {
        const v = ins.values[i];
        if (!next.argNames.includes(a.name)) next.argNames.push(a.name);
        return v === undefined ? a.name : `${a.name}=${v}`;
      });
      return entry(`ARG ${parts.join(' ')}`);
    }
    case 'ENV':
      for (const p of ins.pairs) setEnvVar(next.config, p.key, p.value);
      return entry(`ENV ${ins.pairs.map((p) => `${p.key}=${p.value}`).join(' ')}`);
    case 'LABEL': {
      const labels = (c().Labels ??= {});
      for (const p of ins.pairs) labels[p.key] = p.value;
      return entry(`LABEL ${ins.pairs.map((p) => `${p.key}=${p.value}`).join(' ')}`);
    }
    case 'MAINTAINER':
      next.config.author = ins.name;
      return entry(`MAINTAINER ${ins.name}`);
    case 'EXPOSE': {
      const ports = (c().ExposedPorts ??= {});
      let specs: string[];
      try {
        specs = parsePortSpecs(ins.ports);
      } catch (e) {
        throw new KilnError('BUILD', `EXPOSE: ${(e as Error).message}`, o.place, {
          hint: 'EXPOSE PORT[/tcp|udp|sctp] or a range 8000-8010',
        });
      }
      for (const p of specs) ports[p] = {};
      return entry(`EXPOSE ${goList(specs)}`);
    }
    case 'VOLUME': {
      const vols = (c().Volumes ??= {});
      for (const v of ins.paths) vols[v] = {};
      return entry(`VOLUME ${goList(ins.paths)}`);
    }
    case 'USER':
      c().User = ins.user;
      return entry(`USER ${ins.user}`);
    case 'WORKDIR': {
      // BuildKit's NormalizeWorkdir: an absolute path is kept as written (`/w2/` keeps its slash
      // in the config and the history), a relative one is joined to the current one (and so
      // cleaned). The directory workdir-step.ts makes is the clean path.
      const wd = ins.path.startsWith('/') ? ins.path : path.posix.resolve(c().WorkingDir || '/', ins.path);
      c().WorkingDir = wd;
      return entry(`WORKDIR ${wd}`);
    }
    case 'STOPSIGNAL':
      c().StopSignal = ins.signal;
      return entry(`STOPSIGNAL ${ins.signal}`);
    case 'SHELL':
      next.shell = ins.shell;
      c().Shell = ins.shell;
      return entry(`SHELL ${goList(ins.shell)}`);
    case 'CMD':
      c().Cmd = cmdForm(ins.command);
      next.cmdSet = true;
      return entry(`CMD ${goQuoteList(c().Cmd ?? [])}`);
    case 'ENTRYPOINT':
      c().Entrypoint = cmdForm(ins.command);
      // An ENTRYPOINT set in a stage clears the CMD inherited from the base (docker's rule).
      if (!next.cmdSet) c().Cmd = null;
      return entry(`ENTRYPOINT ${goQuoteList(c().Entrypoint ?? [])}`);
    case 'HEALTHCHECK': {
      if (ins.none) c().Healthcheck = { Test: ['NONE'] };
      else {
        const cmd = ins.command!;
        c().Healthcheck = {
          Test: cmd.form === 'exec' ? ['CMD', ...cmd.args] : ['CMD-SHELL', cmd.command],
          ...(ins.interval !== undefined ? { Interval: ins.interval } : {}),
          ...(ins.timeout !== undefined ? { Timeout: ins.timeout } : {}),
          ...(ins.startPeriod !== undefined ? { StartPeriod: ins.startPeriod } : {}),
          ...(ins.startInterval !== undefined ? { StartInterval: ins.startInterval } : {}),
          ...(ins.retries !== undefined ? { Retries: ins.retries } : {}),
        };
      }
      const h = c().Healthcheck!;
      const d = (n: number | undefined) => goDuration(n ?? 0);
      return entry(
        `HEALTHCHECK {Test:${goList(h.Test ?? [])} Interval:${d(h.Interval)} Timeout:${d(h.Timeout)} StartPeriod:${d(h.StartPeriod)} StartInterval:${d(h.StartInterval)} Retries:${h.Retries ?? 0}}`,
      );
    }
    case 'ONBUILD':
      // Stored for the images built on this one; BuildKit writes no history entry for it.
      (c().OnBuild ??= []).push(ins.expression);
      return { state: next };
  }
}

/** A history entry as BuildKit's dockerfile frontend writes it; `empty_layer` unless the step makes a layer. */
export function historyEntry(created: string, createdBy: string, emptyLayer = true): HistoryEntry {
  const h: HistoryEntry = { created, created_by: createdBy, comment: 'buildkit.dockerfile.v0' };
  if (emptyLayer) h.empty_layer = true;
  return h;
}

/** A variable set again keeps its place in the config's Env (BuildKit's addEnv); a new one goes last. */
export function setEnvVar(config: ImageConfig, key: string, value: string): void {
  const env = [...(config.config?.Env ?? [])];
  const at = env.findIndex((e) => e.startsWith(`${key}=`));
  if (at >= 0) env[at] = `${key}=${value}`;
  else env.push(`${key}=${value}`);
  (config.config ??= {}).Env = env;
}
