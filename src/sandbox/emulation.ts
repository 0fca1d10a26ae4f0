/**
 * Running programs of another architecture: the kernel's binfmt_misc hands a foreign ELF to the
 * interpreter registered for it (QEMU user mode, Debian's qemu-user-static). Inside a sandbox's
 * root the interpreter's path does not exist, so it must be registered with the F flag (the kernel
 * opens it at registration). kiln never runs a foreign program without one: the build fails before
 * it starts, with the command that registers it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { KilnError } from '../util/index.js';

/** QEMU's binfmt_misc entry name for an OCI architecture (amd64 → qemu-x86_64, arm64 → qemu-aarch64…). */
const QEMU_NAME: Record<string, string> = {
  amd64: 'x86_64',
  arm64: 'aarch64',
  arm: 'arm',
  '386': 'i386',
  ppc64le: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  mips64le: 'mips64el',
};

/** The OCI architecture of this machine (process.arch spelled as OCI spells it). */
export function hostArchitecture(): string {
  return (
    ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' } as Record<string, string>)[process.arch] ?? process.arch
  );
}

export interface EmulationStatus {
  /** The binfmt_misc entry that would run it, e.g. qemu-aarch64. */
  entry: string;
  /** Undefined when programs of the architecture run here; else what is wrong. */
  problem?: string;
  /** The command that fixes it (as root). */
  fix?: string;
}

/** Whether programs of `architecture` (OCI spelling) can run here through binfmt_misc, from `binfmtDir`. */
export function emulationStatus(architecture: string, binfmtDir = '/proc/sys/fs/binfmt_misc'): EmulationStatus {
  const q = QEMU_NAME[architecture];
  const entry = `qemu-${q ?? architecture}`;
  const install = `apt-get install qemu-user-static binfmt-support && update-binfmts --enable ${entry}`;
  if (q === undefined) return { entry, problem: `kiln knows no QEMU emulator for architecture ${architecture}` };
  if (!existsSync(`${binfmtDir}/status`))
    return {
      entry,
      problem: `binfmt_misc is not mounted (${binfmtDir})`,
      fix: `mount -t binfmt_misc binfmt_misc ${binfmtDir} && ${install}`,
    };
  const file = `${binfmtDir}/${entry}`;
  if (!existsSync(file))
    return { entry, problem: `no interpreter is registered in binfmt_misc for ${architecture}`, fix: install };
  const text = readFileSync(file, 'utf8');
  if (!/^enabled$/m.test(text))
    return { entry, problem: `the binfmt_misc entry ${entry} is disabled`, fix: `update-binfmts --enable ${entry}` };
  if (!/^flags:.*F/m.test(text))
    return {
      entry,
      problem: `the binfmt_misc entry ${entry} lacks the F flag, so its interpreter cannot be found inside a sandbox's root`,
      fix: `update-binfmts --disable ${entry} && update-binfmts --enable ${entry} (Debian's qemu-user-static registers with F)`,
    };
  return { entry };
}

/**
 * Throws when programs of `architecture` cannot run here: what is missing and the command that
 * registers the interpreter. `what` names what needs it (e.g. "RUN steps of stage build for linux/arm64").
 */
export function ensureEmulation(architecture: string, what: string): void {
  if (architecture === hostArchitecture()) return;
  const s = emulationStatus(architecture);
  if (s.problem === undefined) return;
  throw new KilnError(
    'SANDBOX',
    `${what} need emulation of ${architecture}, and ${s.problem}`,
    {},
    {
      hint: s.fix
        ? `register QEMU for it (as root): ${s.fix}`
        : 'build for another platform, or cross-compile in a FROM --platform=$BUILDPLATFORM stage',
    },
  );
}
