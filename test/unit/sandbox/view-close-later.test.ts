import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { closeViewLater, openView, settleViews } from '../../../src/sandbox/view.js';
import { Store } from '../../../src/store/store.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-view-later-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('closeViewLater: the view is torn down by the time settleViews returns', async () => {
  const store = await Store.open({ root: path.join(tmp, 'store') });
  const views = await Promise.all([openView(store, [], []), openView(store, [], [])]);
  const dirs = views.map((v) => path.dirname(v.root));
  for (const d of dirs) assert.ok(existsSync(d), 'a view lives in a run dir of its own');
  for (const v of views) closeViewLater(v);
  await settleViews();
  for (const d of dirs) assert.equal(existsSync(d), false, `${d} removed`);
  await settleViews(); // nothing pending: returns at once
});

test('settleViews: a teardown that failed is thrown once, after the others are done', async () => {
  const store = await Store.open({ root: path.join(tmp, 'store2') });
  const good = await openView(store, [], []);
  closeViewLater({ close: () => Promise.reject(new Error('busy')) });
  closeViewLater(good);
  await assert.rejects(settleViews(), /busy/);
  assert.equal(existsSync(path.dirname(good.root)), false);
  await settleViews(); // the error was reported once
});
