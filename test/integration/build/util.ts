/** Shared bits of the build integration tests: a store with the Debian base, contexts, inspection. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runKiln } from '../../helpers/kiln.js';
import { ensureBaseTar } from '../../helpers/bases.js';
import { readSavedImage, type SavedImage } from '../../helpers/image-fs.js';

export interface InspectOut {
  Id: string;
  Config: Record<string, unknown>;
  RootFS: { Layers: string[] };
  History: { created_by: string; empty_layer?: boolean }[];
}

export class Workspace {
  readonly dir: string;
  readonly root: string;

  constructor(prefix: string) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), prefix));
    this.root = path.join(this.dir, 'store');
  }

  /** Import the Debian base as debian-slim:bookworm (CMD bash, like the real image). */
  async importDebian(): Promise<void> {
    const r = await runKiln(
      ['import', await ensureBaseTar('debian-slim'), 'debian-slim:bookworm', '--change', 'CMD ["bash"]'],
      { root: this.root },
    );
    assert.equal(r.code, 0, r.stderr);
  }

  context(name: string, files: Record<string, string | Buffer>): string {
    const dir = path.join(this.dir, name);
    mkdirSync(dir, { recursive: true });
    for (const [p, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
      writeFileSync(path.join(dir, p), content);
    }
    return dir;
  }

  kiln(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}) {
    return runKiln(args, { root: this.root, ...opts });
  }

  async build(ctx: string, tag: string, extra: string[] = [], env?: NodeJS.ProcessEnv): Promise<string> {
    const r = await this.kiln(['build', '-q', '-t', tag, ...extra, ctx], { env });
    assert.equal(r.code, 0, `build ${tag}: ${r.stderr}`);
    return r.stdout.trim();
  }

  async inspect(name: string): Promise<InspectOut> {
    const r = await this.kiln(['inspect', name]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as InspectOut[])[0]!;
  }

  /** Run a shell script in the image (entrypoint cleared); its stdout. */
  async sh(name: string, script: string, extra: string[] = []): Promise<string> {
    const r = await this.kiln(['run', ...extra, '--entrypoint', '', name, 'sh', '-c', script]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  }
}

/** The image as `kiln save` writes it, read back: config, each layer's entries, final filesystem. */
export async function savedImage(ws: Workspace, name: string): Promise<SavedImage> {
  const file = path.join(ws.dir, `save-${Math.random().toString(36).slice(2)}.tar`);
  const r = await ws.kiln(['save', '-o', file, name]);
  assert.equal(r.code, 0, r.stderr);
  try {
    return await readSavedImage(file);
  } finally {
    rmSync(file, { force: true });
  }
}
