import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { checkHardLinkTarget, cleanEntryName, cleanEntryNameAsDocker } from '../../../src/layer/apply.js';
import { measureLayer } from '../../../src/layer/measure.js';
import { KilnError } from '../../../src/util/errors.js';
import { craftTar } from '../../helpers/craft-tar.js';

const refused = (fn: () => unknown, message: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof KilnError && e.code === 'UNSAFE' && message.test(e.message));

test('layer names: strict (no absolute name, no ..)', () => {
  assert.equal(cleanEntryName('./a//b/'), 'a/b');
  refused(() => cleanEntryName('/etc/x'), /"\/etc\/x": absolute path/);
  refused(() => cleanEntryName('a/../b'), /"a\/\.\.\/b": path contains "\.\."/);
});

test("ADD archive names: cleaned as docker's unpacker, refused only when they leave the root", () => {
  assert.equal(cleanEntryNameAsDocker('/abs/x'), 'abs/x');
  assert.equal(cleanEntryNameAsDocker('a/../b'), 'b');
  assert.equal(cleanEntryNameAsDocker('/../../top'), 'top');
  assert.equal(cleanEntryNameAsDocker('./'), '');
  refused(() => cleanEntryNameAsDocker('../x'), /"\.\.\/x": path contains "\.\." that leaves the root/);
  refused(() => cleanEntryNameAsDocker('a/../../x'), /leaves the root/);
});

test('a refused hard link names the link entry, and its target', () => {
  refused(
    () => checkHardLinkTarget('link', '../../etc/shadow'),
    /^refusing layer entry "link": hard link target "\.\.\/\.\.\/etc\/shadow": path contains/,
  );
  refused(() => checkHardLinkTarget('link', ''), /"link": hard link without a target/);
  assert.equal(checkHardLinkTarget('link', '/etc/passwd', 'docker'), 'etc/passwd');
});

test('measureLayer: diff_id and size of a sound tar; what is no tar, or hostile, is refused', async () => {
  const tar = craftTar([{ name: 'a', content: 'x' }]);
  const m = await measureLayer(Readable.from([tar]));
  assert.equal(m.uncompressedSize, tar.length);
  assert.equal(m.entries, 1);
  await assert.rejects(measureLayer(Readable.from([Buffer.alloc(700, 'x')])), /malformed tar header/);
  await assert.rejects(
    measureLayer(Readable.from([craftTar([{ name: '../x', content: 'x' }])])),
    /refusing layer entry "\.\.\/x"/,
  );
  await assert.rejects(
    measureLayer(Readable.from([craftTar([{ name: 'l', type: 'hardlink', linkname: '/etc/passwd' }])])),
    /refusing layer entry "l": hard link target "\/etc\/passwd": absolute path/,
  );
});
