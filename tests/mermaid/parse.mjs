// Parses each file named on the command line with Mermaid's own parser and exits 1 on
// the first that does not parse. Mermaid's parser sanitizes labels with DOMPurify, which
// needs a DOM: jsdom provides one, so no browser is involved.
import { readFileSync } from 'node:fs';
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');

let failed = 0;
for (const file of process.argv.slice(2)) {
  try {
    const result = await mermaid.parse(readFileSync(file, 'utf8'));
    console.log(`ok ${file} (${result.diagramType})`);
  } catch (error) {
    failed += 1;
    console.error(`error ${file}: ${error.message ?? error}`);
  }
}
process.exit(failed ? 1 : 0);
