import { readFileSync } from 'node:fs';
import { ROOT } from './cli.js';

/** `cases.json` of a folder of nft conformance data: base flags, and each case's flags after them. */
export interface NftCaseData {
  readonly base: string[];
  readonly cases: Record<string, string[]>;
}

/**
 * One folder of nft conformance data (by default Istio's nft capture test cases): `cases.json`,
 * each case with its full flags, and Istio's script for a case, `expected/<case>.nft`, read when
 * asked for.
 */
export function loadNftCases(dir = `${ROOT}golden/istio-nft`) {
  const data = JSON.parse(readFileSync(`${dir}/cases.json`, 'utf8')) as NftCaseData;
  const expected = (name: string): string => readFileSync(`${dir}/expected/${name}.nft`, 'utf8');
  const cases = Object.entries(data.cases).map(([name, flags]) => ({
    name,
    args: [...data.base, ...flags],
    get expected(): string {
      return expected(name);
    },
  }));
  return { data, cases, expected };
}

/** Rules of one chain, as `add`/`insert` lines without the table prefix, in script order. */
export function chainLines(text: string, table: string, chain: string): string[] {
  const prefix = new RegExp(`^(add|insert) rule inet istio-proxy-${table} ${chain} `);
  return text.split('\n').filter((l) => prefix.test(l)).map((l) => l.replace(`inet istio-proxy-${table} `, ''));
}
