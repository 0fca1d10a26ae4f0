/**
 * Every command kiln has, one module each. A module exports `register(program)` which adds its
 * subcommand (with help for every flag) and returns it. Add new commands here.
 */
import type { Command } from 'commander';
import { register as plan } from './plan.js';

export type RegisterCommand = (program: Command) => Command;

export const commands: RegisterCommand[] = [plan];
