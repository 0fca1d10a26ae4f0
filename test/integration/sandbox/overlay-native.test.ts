/**
 * The overlay snapshotter's layers equal the native snapshotter's: a file overlay copies up because
 * a RUN opened it for writing, but left unchanged (useradd's /etc/.pwd.lock, an append of
 * nothing), is no change, as BuildKit's overlay differ says. With SOURCE_DATE_EPOCH the two builds
 * give the same image.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { basesUnavailable } from '../../helpers/bases.js';
import { needs } from '../../helpers/prereq.js';
import { savedImage, Workspace } from '../build/util.js';

const skip = needs(basesUnavailable() ?? (process.getuid?.() === 0 ? undefined : 'overlay builds need root'));
const ws = new Workspace('kiln-ovl-native-');
after(() => rmSync(ws.dir, { recursive: true, force: true }));

describe('overlay and native snapshotters give the same layers', { skip }, () => {
  let ctx: string;
  before(async () => {
    await ws.importDebian();
    ctx = ws.context('app', {
      Dockerfile: [
        'FROM debian-slim:bookworm',
        // useradd opens /etc/.pwd.lock for writing and leaves it empty; `>>` opens /etc/issue and
        // /usr/lib/os-release (its directory copied up for it) for append and writes nothing.
        'RUN useradd -m -u 1234 app && : >> /etc/issue && : >> /usr/lib/os-release && echo x > /x',
        'RUN : >> /etc/debian_version',
        'USER app',
        'RUN touch /home/app/f',
      ].join('\n'),
    });
  });

  test('with SOURCE_DATE_EPOCH, --snapshotter overlay and native give the same image id and layers', async () => {
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    const ids: Record<string, string> = {};
    for (const s of ['overlay', 'native']) {
      ids[s] = await ws.build(ctx, `app:${s}`, ['--no-cache', '--snapshotter', s], env);
    }
    const [overlay, native] = [await ws.inspect('app:overlay'), await ws.inspect('app:native')];
    assert.deepEqual(overlay.RootFS.Layers, native.RootFS.Layers, 'the same layer diff_ids');
    assert.equal(ids.overlay, ids.native, 'the same image id');
    const img = await savedImage(ws, 'app:overlay');
    const names = img.layers.map((l) => l.map((e) => e.path));
    const first = names[1]!;
    assert.ok(first.includes('/etc/passwd') && first.includes('/x'), first.join(' '));
    for (const p of ['/etc/.pwd.lock', '/etc/issue', '/usr/lib/os-release', '/usr/lib', '/usr'])
      assert.ok(!first.includes(p), `${p} is not a change: ${first.join(' ')}`);
    // The RUN that only opened a file for append changed nothing: no layer of its own.
    assert.equal(names.length, 3, `base, first RUN, last RUN: ${names.slice(2).join(' | ')}`);
    assert.ok(!names[2]!.includes('/etc/debian_version'), 'the append of nothing is no change');
  });
});
