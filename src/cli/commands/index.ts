/**
 * Every command kiln has, one module each. A module exports `register(program)` which adds its
 * subcommand (with help for every flag) and returns it. Add new commands here.
 */
import type { Command } from 'commander';
import { register as plan } from './plan.js';
import { register as images } from './images.js';
import { register as tag } from './tag.js';
import { register as rmi } from './rmi.js';
import { register as importCmd } from './import.js';
import { register as save } from './save.js';
import { register as load } from './load.js';
import { register as exportCmd } from './export.js';
import { register as prune } from './prune.js';
import { register as inspect } from './inspect.js';
import { register as run } from './run.js';
import { register as buildCmd } from './build.js';
import { register as history } from './history.js';
import { register as analyze } from './analyze.js';
import { register as diff } from './diff.js';
import { register as sbom } from './sbom.js';
import { register as scan } from './scan.js';
import { register as lint } from './lint.js';
import { register as report } from './report.js';
import { register as pull } from './pull.js';
import { register as push } from './push.js';
import { register as login } from './login.js';
import { register as manifest } from './manifest.js';

export type RegisterCommand = (program: Command) => Command;

export const commands: RegisterCommand[] = [plan, images, tag, rmi, importCmd, save, load, exportCmd, prune, inspect, run, buildCmd, history, analyze, diff, sbom, scan, lint, report, pull, push, login, manifest];
