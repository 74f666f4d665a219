// Builds the console into backoffice/console/static (committed, so `make test` and `fleet api` need no npm):
// assets/console.js + assets/console.css (esbuild, minified, licence comments kept), index.html naming each asset
// with its content hash, and build-info.json recording the hash of the sources this bundle was built from
// (tests/test_console_static.py recomputes it, so a source change without a rebuild fails the suite).
// city.geojson is exported by `python -m backoffice.console.basemap` (make console runs both).
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'backoffice', 'console', 'static');
const sha = (buf) => createHash('sha256').update(buf).digest('hex');

/** Files whose content decides the bundle: every file under src/, the build script, the manifest and lockfile. */
export function sourceFiles() {
  const walk = (dir) => readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
  return [...walk(join(here, 'src')), join(here, 'build.mjs'), join(here, 'package.json'), join(here, 'package-lock.json')]
    .map((p) => relative(here, p).split('\\').join('/'))
    .sort();
}

export function sourcesHash() {
  const h = createHash('sha256');
  for (const f of sourceFiles()) {
    h.update(f);
    h.update('\0');
    h.update(readFileSync(join(here, f)));
    h.update('\0');
  }
  return h.digest('hex');
}

mkdirSync(join(out, 'assets'), { recursive: true });
await esbuild.build({
  entryPoints: [join(here, 'src', 'main.js')],
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  legalComments: 'eof',
  loader: { '.png': 'dataurl', '.svg': 'dataurl' },
  outfile: join(out, 'assets', 'console.js'),
  logLevel: 'warning',
});
const files = {};
for (const f of ['assets/console.js', 'assets/console.css', 'city.geojson']) files[f] = sha(readFileSync(join(out, f)));
const short = (f) => files[f].slice(0, 12);
const html = readFileSync(join(here, 'src', 'index.html'), 'utf8')
  .replace('{{js}}', short('assets/console.js'))
  .replace('{{css}}', short('assets/console.css'))
  .replace('{{geojson}}', short('city.geojson'));
writeFileSync(join(out, 'index.html'), html);
files['index.html'] = sha(html);
const info = { sources_sha256: sourcesHash(), sources: sourceFiles(), files, esbuild: esbuild.version };
writeFileSync(join(out, 'build-info.json'), `${JSON.stringify(info, null, 2)}\n`);
console.log(`console built into ${relative(process.cwd(), out)}: ${Object.entries(files).map(([f]) => `${f} ${statSync(join(out, f)).size} B`).join(', ')}`);
