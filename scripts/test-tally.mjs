// A node:test reporter that writes one JSON line per finished test or suite to its destination:
// the file, whether it was a suite, passed, failed or skipped (with the reason). scripts/test.mjs
// reads it to say how many unit and integration tests ran (node's own summary does not split them).
export default async function* tally(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const d = event.data;
    yield (
      JSON.stringify({
        file: d.file ?? '',
        name: d.name,
        suite: d.details?.type === 'suite',
        failed: event.type === 'test:fail',
        skip: d.skip === undefined || d.skip === false ? false : d.skip === true ? 'skipped' : String(d.skip),
        todo: d.todo !== undefined && d.todo !== false,
      }) + '\n'
    );
  }
}
