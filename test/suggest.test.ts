import { describe, expect, it } from 'vitest';
import { closest, didYouMean } from '../src/suggest.js';
import { goBoolExpected, goBoolMeant } from '../src/config/gobool.js';

const FLAGS = ['--dry-run', '--redirect-dns', '--capture-all-dns', '--log_as_json', '--log_output_level', '--log_target', '--output', '--help', '--version'];

describe('did you mean', () => {
  it.each([
    // Case, "-" and "_" aside.
    ['--dryrun', '--dry-run'],
    ['--DRY-RUN', '--dry-run'],
    ['--log-as-json', '--log_as_json'],
    // Edit distance, transpositions counted once.
    ['--redirect-dsn', '--redirect-dns'],
    ['--verison', '--version'],
    ['--outptu', '--output'],
    // The only flag the word begins, or begins with.
    ['--capture', '--capture-all-dns'],
    ['--outputs-all', '--output'],
    // Nothing close: no guess.
    ['--frobnicate', undefined],
    ['--log', undefined], // the start of three flags
    ['--x', undefined],
  ])('%s: %s', (word, meant) => {
    expect(closest(word, FLAGS)).toBe(meant);
  });

  it('short words allow one edit, longer ones more', () => {
    expect(closest('jsno', ['text', 'json'])).toBe('json');
    expect(closest('xml', ['text', 'json'])).toBeUndefined();
    expect(closest('REDIRCT', ['REDIRECT', 'TPROXY'])).toBe('REDIRECT');
    expect(closest('tproxy', ['REDIRECT', 'TPROXY'])).toBe('TPROXY');
    expect(didYouMean('nf', ['legacy', 'nft'])).toBe(' (did you mean nft?)');
    expect(didYouMean('iptables', ['legacy', 'nft'])).toBe('');
  });

  it.each([
    ['true', 'true'],
    ['F', 'F'],
    ['yes', 'true'],
    ['On', 'true'],
    ['enabled', 'true'],
    ['no', 'false'],
    ['off', 'false'],
    ['maybe', undefined],
    [' true', undefined],
  ])('the boolean %j means: %s', (word, meant) => {
    expect(goBoolMeant(word)).toBe(meant);
    expect(goBoolExpected(word)).toBe(meant === undefined ? 'true or false' : `true or false (did you mean ${meant}?)`);
  });
});
