/** LeftSourceViews: a key's view of a COPY --from source serves that step's copy only, and is closed when not taken. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeftSourceViews } from '../../../src/engine/source-views.js';
import { settleViews } from '../../../src/sandbox/index.js';

function view(name: string, closed: string[]) {
  return { root: `/views/${name}`, close: async () => void closed.push(name) };
}

test("a step's copy takes the view its key left, of the same layers only; taken, it is not closed here", async () => {
  const closed: string[] = [];
  const views = new LeftSourceViews();
  const copy = {};
  views.leave(copy, 'sha256:chain', view('v', closed));
  assert.equal(views.take({}, 'sha256:chain'), undefined, 'another step gets none');
  assert.equal(views.take(copy, 'sha256:other'), undefined, 'nor a view of other layers');
  assert.equal(views.take(copy, 'sha256:chain')?.root, '/views/v');
  assert.equal(views.take(copy, 'sha256:chain'), undefined, 'taken once');
  views.closeLeft(copy);
  views.closeAll();
  await settleViews();
  assert.deepEqual(closed, []);
});

test('what no copy took is closed at the step end or at the build end; a second view left for a step closes the first', async () => {
  const closed: string[] = [];
  const views = new LeftSourceViews();
  const [a, b] = [{}, {}];
  views.leave(a, 'sha256:x', view('a1', closed));
  views.leave(a, 'sha256:x', view('a2', closed));
  views.leave(b, 'sha256:y', view('b', closed));
  await settleViews();
  assert.deepEqual(closed, ['a1']);
  views.closeLeft(a);
  await settleViews();
  assert.deepEqual(closed, ['a1', 'a2']);
  views.closeAll();
  await settleViews();
  assert.deepEqual(closed, ['a1', 'a2', 'b']);
  assert.equal(views.take(b, 'sha256:y'), undefined);
});
