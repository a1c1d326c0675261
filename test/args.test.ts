import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { quickRaw, rawFromArgs, type OwnArgs } from '../src/args.js';
import { OPTIONS, OPTION_KEYS } from '../src/config/options.js';
import { ConfigError } from '../src/errors.js';

/**
 * The command line as Istio's flag parser (spf13/pflag under cobra) reads it, read once by one
 * walk (src/args.ts readArgs) for every runtime: quickRaw (the entrypoint's hot path) and
 * rawFromArgs (everything else, and what quickRaw gives up on) are the same reading.
 */
const names = OPTION_KEYS.flatMap((k) => {
  const spec = OPTIONS[k] as { long: string; short?: string; kind: 'string' | 'boolean' | 'strings' };
  return [{ key: k, name: `--${spec.long}`, kind: spec.kind }, ...(spec.short ? [{ key: k, name: `-${spec.short}`, kind: spec.kind }] : [])];
});

const value = fc.oneof(fc.constantFrom('', '*', '80', '15001,15002', '"quoted"', "'single'", '-5s', '--x', 'a b', 'x\ny', '=', '10.0.0.0/8', '-n', 'true'), fc.string({ maxLength: 12 }));
const boolValue = fc.constantFrom(undefined, '1', 't', 'true', 'TRUE', '0', 'f', 'false', 'False');

/** A flag of ours in one of the forms pflag takes, with its canonical form `--long=value`. */
const flag = fc.tuple(fc.constantFrom(...names), value, boolValue, fc.integer({ min: 0, max: 2 })).map(([n, v, b, form]) => {
  const long = `--${OPTIONS[n.key].long}`;
  if (n.kind === 'boolean') return { given: b === undefined ? [n.name] : [`${n.name}=${b}`], canonical: `${long}=${b ?? 'true'}` };
  const short = !n.name.startsWith('--');
  // --long value | --long=value; -s value | -s=value | -svalue. Attached only when the value is not
  // empty (pflag reads `-i=` as -i with the value "="), and -svalue only when it does not start
  // with "=" (`-d=x` is -d with the value "x").
  const attached = form === 1 ? `${n.name}=${v}` : `${n.name}${v}`;
  const given = form === 0 || (short && (v === '' || (form === 2 && v.startsWith('=')))) ? [n.name, v] : short || form === 1 ? [attached] : [n.name, v];
  return { given, canonical: `${long}=${v}` };
});

describe('the command line, read as pflag reads it', () => {
  it('every form of a flag reads as its canonical --long=value form (random sequences, with and without the program name)', () => {
    fc.assert(
      fc.property(fc.array(flag, { maxLength: 8 }), fc.boolean(), (flags, programName) => {
        const env = { ISTIO_INBOUND_PORTS: '9090', ISTIO_META_DNS_CAPTURE: 'true' };
        const args = [...(programName ? ['istio-iptables'] : []), ...flags.flatMap((f) => f.given)];
        const quick = quickRaw(args, env);
        expect(quick).toBeDefined();
        expect(quick).toEqual(quickRaw(flags.map((f) => f.canonical), env));
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    // A value attached to a short flag, as pflag reads it.
    [['-p15001'], { proxyPort: '15001' }],
    [['-mREDIRECT'], { mode: 'REDIRECT' }],
    [['-i10.0.0.0/8'], { outboundCidrs: '10.0.0.0/8' }],
    [['-p=15001'], { proxyPort: '15001' }],
    [['-pnosuchuser'], { proxyPort: 'nosuchuser' }],
    [['-b*', '-d15090,15021'], { inboundPorts: '*', inboundPortsExclude: '15090,15021' }],
    // The next argument is a flag's value whatever it looks like.
    [['-c', '-eth0'], { excludeInterfaces: '-eth0' }],
    [['-x', '-n'], { outboundExcludeCidrs: '-n' }],
    [['--probe-timeout', '-5s'], { probeTimeoutMs: '-5s' }],
    // A cluster of switches (our one short switch is -n), ending with a flag that takes a value.
    [['-nn'], { dryRun: true }],
    [['-i='], { outboundCidrs: '=' }],
    [['-nb*'], { inboundPorts: '*', dryRun: true }],
    [['-nb', '80'], { inboundPorts: '80', dryRun: true }],
    [['-n=false'], { dryRun: false }],
    // A letter after a flag taking a value is its value, even our switch's letter.
    [['-bn'], { inboundPorts: 'n' }],
    // -- ends the flags (and what follows is an error, see below); = splits at the first.
    [['--istio-inbound-ports=80=x'], { inboundPorts: '80=x' }],
    [['--log_target', 'stdout', '--log_target=stderr'], { logTargets: ['stdout', 'stderr'] }],
    [['-p', '1', '--envoy-port', '2', '-p3'], { proxyPort: '3' }],
  ])('%j', (args, values) => {
    expect(quickRaw(args, {})?.values).toEqual(values);
  });

  it.each([
    [['--help']],
    [['-h']],
    [['-nh']],
    [['-hn']],
    [['--version']],
    [['-b', '80', '--nope']],
    [['-b', '80', 'stray']],
    [['-b', '80', '--', '-p', '1']],
    [['-nX']],
    [['--redirect-dns', 'true']],
    [['--nope', '--redirect-dns=maybe']],
    [['stray', '-b']],
  ])('leaves %j to rawFromArgs (help, the version, and errors with their hints)', (args) => {
    expect(quickRaw(args, {})).toBeUndefined();
  });

  it('--help=false and -h=false ask for nothing', () => {
    expect(quickRaw(['--help=false', '-h=false', '-n'], {})?.values).toEqual({ dryRun: true });
  });
});

describe('command-line errors, with their hints', () => {
  const error = async (args: readonly string[], own?: OwnArgs): Promise<string> => {
    try {
      await rawFromArgs(args, {}, () => {}, undefined, own);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error(`no error for ${JSON.stringify(args)}`);
  };

  it.each([
    [['--dryrun'], 'unknown flag --dryrun (did you mean --dry-run?)'],
    [['--dry_run'], 'unknown flag --dry_run (did you mean --dry-run?)'],
    [['--log-as-json'], 'unknown flag --log-as-json (did you mean --log_as_json?)'],
    [['--redirect-dnss'], 'unknown flag --redirect-dnss (did you mean --redirect-dns?)'],
    [['--no-reconcile'], 'unknown flag --no-reconcile (did you mean --reconcile=false?)'],
    [['--verison'], 'unknown flag --verison (did you mean --version?)'],
    [['--frobnicate=1'], 'unknown flag --frobnicate (see --help)'],
    [['-nY'], 'unknown shorthand flag "Y" in -nY (see --help)'],
    [['-N'], 'unknown shorthand flag "N" in -N (did you mean -n?)'],
    [['-dry-run'], 'unknown flag -dry-run: a long flag takes two dashes (did you mean --dry-run?)'],
    [['-output=json'], 'unknown flag -output=json: a long flag takes two dashes (did you mean --output?)'],
    [['--redirect-dns', 'true'], 'unexpected argument "true" after --redirect-dns: a switch takes its value after "=" (did you mean --redirect-dns=true?)'],
    [['-n', 'false'], 'unexpected argument "false" after -n: a switch takes its value after "=" (did you mean -n=false?)'],
    [['--dry-run', 'yes'], 'unexpected argument "yes" after --dry-run: a switch takes its value after "=" (did you mean --dry-run=true?)'],
    [['--dry-run', 'now'], 'unexpected argument "now" after --dry-run: a switch takes its value after "=" (see --help)'],
    [['trac', '-b', '*'], 'unknown command "trac" (did you mean trace?)'],
    [['-b', '80', 'stray'], 'unexpected argument "stray": only flags are taken here (see --help)'],
    [['-b', '80', '--', '-p'], 'unexpected argument "-p": only flags are taken here (see --help)'],
    [['--redirect-dns=maybe'], 'invalid value "maybe" for --redirect-dns: expected true or false'],
    [['--redirect-dns=yes'], 'invalid value "yes" for --redirect-dns: expected true or false (did you mean true?)'],
    [['--help=maybe'], 'invalid value "maybe" for --help: expected true or false'],
    [['-p'], 'flag needs an argument: -p/--envoy-port'],
    [['-np'], 'flag needs an argument: -p/--envoy-port'],
    [['--envoy-port'], 'flag needs an argument: --envoy-port'],
    [['---x'], 'bad flag syntax: "---x"'],
    // The first problem is the error, as pflag stops at it, even with --help.
    [['--help', '--nope'], 'unknown flag --nope (see --help)'],
    [['--nope', '--redirect-dns=maybe'], 'unknown flag --nope (see --help)'],
    // A flag with control characters is shown quoted.
    [['--x\n-A'], 'unknown flag "--x\\n-A" (see --help)'],
  ])('%j: %s', async (args, message) => {
    expect(await error(args)).toBe(message);
  });

  it("a subcommand's own flags are among the suggestions, and a boolean word after a switch is never a flow word", async () => {
    const own: OwnArgs = { names: ['--flows'], flag: () => {}, word: () => {} };
    expect(await error(['--flow', 'x'], own)).toBe('unknown flag --flow (did you mean --flows?)');
    expect(await error(['-flows', 'x'], own)).toBe('unknown flag -flows: a long flag takes two dashes (did you mean --flows?)');
    expect(await error(['--redirect-dns', 'true', 'inbound'], own)).toMatch(/^unexpected argument "true" after --redirect-dns/);
  });
});

describe('environment variable names in the option table', () => {
  // Istio reads a flag's variable by its long name upper-cased, `-` as `_`; these differ on purpose.
  const EXCEPTIONS: Record<string, readonly string[]> = {
    proxyPort: [], // #2: ENVOY_PORT is not read
    output: [], // ours, not Istio's: no variable
    explain: [], // ours: output only, no variable (a pod's environment has no say in what a dry run prints)
    outboundOwnerGroups: ['ISTIO_OUTBOUND_OWNER_GROUPS'],
    outboundOwnerGroupsExclude: ['ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE'],
    ipv4LoopbackCidr: ['ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR'],
    redirectDns: ['ISTIO_META_DNS_CAPTURE', 'REDIRECT_DNS'],
    dropInvalid: ['INVALID_DROP', 'DROP_INVALID'],
    dualStack: ['ISTIO_DUAL_STACK', 'DUAL_STACK'],
    // Istio's global log flags (pkg/log, --vklog from the cobra root) have no variables.
    logAsJson: [],
    logTargets: [],
    logCaller: [],
    logStacktraceLevel: [],
    vklog: [],
  };
  it.each(OPTION_KEYS)('%s', (key) => {
    const spec = OPTIONS[key];
    expect(spec.env).toEqual(EXCEPTIONS[key] ?? [spec.long.toUpperCase().replaceAll('-', '_')]);
  });
});
