/**
 * `string-width` for the QuickJS entrypoint (yargs's help layout measures with it). The package
 * segments text with Intl.Segmenter, which the engine lacks; our help text is ASCII, where the
 * width is the number of code points once ANSI escapes are removed, as here.
 */
const ANSI = /\u001b\[[0-9;]*[A-Za-z]/g;

export default function stringWidth(text: string): number {
  let n = 0;
  for (const _ of text.replace(ANSI, '')) n++;
  return n;
}
