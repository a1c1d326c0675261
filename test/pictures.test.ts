import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, runCli } from './support/cli.js';
import { MODES } from './support/modes.js';
import { decodePng } from './support/png.js';

/**
 * The pictures (issue 20): every SVG of docs/ and each golden mode's chain graph, rendered by
 * headless Chromium (Debian's chromium; scripts/test-deps.sh installs it): the screenshot is not
 * blank, and the chain names are laid out on the page (text Chromium measured, not just markup).
 * And docs/explain.md's pictures and examples are what its commands make today.
 */

const tmp = mkdtempSync(join(tmpdir(), 'iit-pictures-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }), 60_000);
let runs = 0;

/** Render an SVG in a page of its own: the screenshot, and the text elements Chromium laid out with a width. */
async function render(svg: string): Promise<{ png: Buffer; laidOut: string[] }> {
  const size = /<svg [^>]*width="(\d+)" height="(\d+)"/.exec(svg);
  if (size === null) throw new Error('not one of our SVGs (no width and height)');
  const [width, height] = [Math.min(Number(size[1]), 4000), Math.min(Number(size[2]), 4000)];
  const n = runs++;
  const page = join(tmp, `page-${n}.html`);
  const shot = join(tmp, `shot-${n}.png`);
  const script = "document.getElementById('laid-out').textContent = JSON.stringify([...document.querySelectorAll('svg text')].filter((t) => t.getComputedTextLength() > 0).map((t) => t.textContent));";
  writeFileSync(page, `<!doctype html><html><head><meta charset="utf-8"></head><body style="margin:0">${svg}<pre id="laid-out"></pre><script>${script}</script></body></html>`);
  // This machine has no outside network: nothing may be fetched, no first-run or background work.
  const r = await execa(
    'chromium',
    ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', `--user-data-dir=${join(tmp, `profile-${n}`)}`, '--hide-scrollbars', `--window-size=${width},${height}`, `--screenshot=${shot}`, '--dump-dom', `file://${page}`],
    { reject: false, timeout: 60_000 },
  );
  rmSync(join(tmp, `profile-${n}`), { recursive: true, force: true });
  expect(r.exitCode, r.stderr).toBe(0);
  const dump = /<pre id="laid-out">([^<]*)<\/pre>/.exec(r.stdout);
  if (dump === null) throw new Error(`Chromium printed no page: ${r.stderr.slice(0, 500)}`);
  const laidOut = JSON.parse(dump[1]?.replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&') ?? '[]') as string[];
  return { png: readFileSync(shot), laidOut };
}

/** Not blank: a fair share of pixels are not the white background, in several colours. */
function drawn(png: Buffer): { inked: number; colours: number } {
  const img = decodePng(png);
  let inked = 0;
  const colours = new Set<number>();
  for (let i = 0; i < img.rgba.length; i += 4) {
    const [r, g, b] = [img.rgba[i] ?? 0, img.rgba[i + 1] ?? 0, img.rgba[i + 2] ?? 0];
    if (r < 245 || g < 245 || b < 245) inked++;
    colours.add((r << 16) | (g << 8) | b);
  }
  return { inked: inked / (img.width * img.height), colours: colours.size };
}

const CHAIN = /\b(?:ISTIO_[A-Z_]+|PREROUTING|OUTPUT|INPUT|POSTROUTING)\b/g;

/** Each SVG to render, with the chain names it must show. */
async function pictures(): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for (const f of readdirSync(join(ROOT, 'docs/pictures')).filter((f) => f.endsWith('.svg')).sort()) out.push([`docs/pictures/${f}`, readFileSync(join(ROOT, 'docs/pictures', f), 'utf8')]);
  for (const [name, args] of Object.entries(MODES).filter(([n]) => !n.endsWith('-json'))) {
    const r = await runCli([...args, '--dry-run', '--output', 'svg']);
    expect(r.code, r.stderr).toBe(0);
    out.push([`chain graph of ${name}`, r.stdout]);
  }
  const drop = await runCli(['trace', '-b', '*', '--drop-invalid', '--enable-ipv6=false', '--verbose', '--output', 'svg', 'inbound', 'tcp', '10.1.1.1', '10.0.0.5:8080', 'state=invalid']);
  out.push(['trace: a dropped INVALID packet, verbose', drop.stdout]);
  return out;
}

describe('every picture renders in headless Chromium', async () => {
  const list = await pictures();
  it('covers the docs pictures and every golden mode', () => {
    expect(list.filter(([n]) => n.startsWith('docs/')).length).toBeGreaterThanOrEqual(6);
    expect(list.length).toBeGreaterThanOrEqual(6 + Object.keys(MODES).length - 1);
  });
  it.each(list)('%s', async (_name, svg) => {
    const chains = [...new Set(svg.match(CHAIN) ?? [])];
    expect(chains.length).toBeGreaterThan(0);
    const { png, laidOut } = await render(svg);
    const { inked, colours } = drawn(png);
    expect(inked, 'share of non-white pixels').toBeGreaterThan(0.01);
    expect(colours).toBeGreaterThan(8);
    const text = laidOut.join('\n');
    for (const chain of chains) expect(text, `${chain} laid out`).toContain(chain);
  }, 90_000);

  it('the check can fail: a blank page is blank, and text not drawn is not laid out', async () => {
    const { png, laidOut } = await render('<svg xmlns="http://www.w3.org/2000/svg" width="300" height="200"><rect width="300" height="200" fill="#ffffff"/><text x="10" y="20" display="none">ISTIO_OUTPUT</text></svg>');
    expect(drawn(png).inked).toBeLessThan(0.01);
    expect(laidOut).toEqual([]);
  }, 90_000);
});

describe('docs/explain.md is current', () => {
  const script = join(ROOT, 'scripts/docs-pictures.mjs');
  it('its pictures and example outputs are what its commands make', async () => {
    const r = await execa(process.execPath, [script, '--check'], { reject: false, timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });

  it('the check fails on a stale example, naming it', async () => {
    const page = readFileSync(join(ROOT, 'docs/explain.md'), 'utf8');
    const stale = page.replace('-A ISTIO_OUTPUT -d 10.96.0.0/12 -j RETURN', '-A ISTIO_OUTPUT -d 10.96.0.0/16 -j RETURN');
    expect(stale).not.toBe(page);
    const copy = join(tmp, 'explain.md');
    writeFileSync(copy, stale);
    const r = await execa(process.execPath, [script, '--check', '--page', copy], { reject: false, timeout: 60_000 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('docs/explain.md: $ istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i 10.0.0.0/8');
  });
});
