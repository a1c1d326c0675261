// A strict TypeScript consumer of the installed package that uses every public export
// (test/package.test.ts checks that each name of the API report appears here) and only
// TypeScript's lib: no @types/node, no @types/yargs. Type-checked, not run.
import {
  ApplyError,
  Chains,
  ConfigError,
  OPTIONS,
  TraceError,
  apply,
  applyOptionsFrom,
  buildPlan,
  cleanup,
  configFromArgs,
  configFromObject,
  detectHost,
  diff,
  fixedHost,
  openNamespace,
  DEFAULT_SPORT,
  describeProvenance,
  parseExpectation,
  parseFlowLines,
  parseFlowWords,
  renderPlanMermaid,
  renderPlanSvg,
  renderTraceMermaid,
  renderTraceSvg,
  renderDiff,
  renderDiffJson,
  renderIpCommands,
  renderJson,
  renderNft,
  renderRestore,
  renderText,
  toDryRunJson,
  traceFlow,
  validateFlow,
  type ApplyOptions,
  type ApplyReport,
  type BuiltinChain,
  type CaptureConfig,
  type Chain,
  type Cidr,
  type CidrInput,
  type CidrSet,
  type CleanupOptions,
  type CommandResult,
  type CommandRunner,
  type Config,
  type ConfigInput,
  type DiffOptions,
  type DiffReport,
  type DnsServers,
  type DryRunExplanation,
  type DryRunJson,
  type Endpoint,
  type Expectation,
  type ExplainedOption,
  type ExplainedProvenance,
  type DryRunOptions,
  type Family,
  type FamilyDiff,
  type FamilyOutcome,
  type FamilyRules,
  type Fact,
  type Flow,
  type FlowDefaults,
  type FlowInput,
  type FlowLine,
  type FlowState,
  type Hook,
  type HostFacts,
  type HostFactsOptions,
  type InboundPorts,
  type IptablesBackend,
  type IptablesReport,
  type LogFields,
  type LogLevel,
  type LogTarget,
  type Logger,
  type Match,
  type NamespaceOptions,
  type NamespaceTarget,
  type NftRenderOptions,
  type NftablesReport,
  type Operation,
  type OptionCommand,
  type OptionUse,
  type OptionGroup,
  type OptionInput,
  type OptionKey,
  type OptionKind,
  type OptionSection,
  type OptionSpec,
  type OptionValue,
  type OutboundCidrs,
  type OutputFormat,
  type OwnChain,
  type OwnerGroupFilter,
  type OwnerGroups,
  type OwnerId,
  type Plan,
  type PortOrRange,
  type ProbeOptions,
  type ProbeResult,
  type Protocol,
  type Provenance,
  type RawOptions,
  type RouteDifference,
  type RouteStep,
  type Rule,
  type RuleDifference,
  type RuleFamily,
  type RunConfig,
  type Table,
  type Target,
  type TraceAction,
  type TraceLanding,
  type TraceOptions,
  type TraceReason,
  type TraceResult,
  type TraceStep,
  type ValueInput,
  type ValueInputs,
  type ValueName,
  type ValueOf,
  type ValueSource,
  type ValueTypes,
  type Verdict,
} from 'istio-iptables-ts';

const env: Readonly<Record<string, string | undefined>> = { ISTIO_INBOUND_PORTS: '*' };
const host: HostFacts = fixedHost({ proxyUid: 1337, ipv6: true, dnsServers: { ipv4: ['10.96.0.10'], ipv6: [] } satisfies DnsServers });
const detected: HostFacts = detectHost(env, (message: string) => void message);
// The flag/env text form; configFromObject takes the typed form below.
const flagText: RawOptions = { mode: 'TPROXY', inboundPorts: '*', redirectDns: 'true' };
const excludedCidr: CidrInput = { family: 'ipv4', address: '10.96.0.0', prefixLength: 12 };
const probePort: OptionInput<'iptablesProbePort'> = 15102;
const timeoutMs: ValueInput<'duration'> = 1500;
const uids: ValueInputs['uidList'] = [1337, 'istio-proxy'];
const raw: ConfigInput = {
  mode: flagText.mode === 'TPROXY' ? 'TPROXY' : 'REDIRECT',
  inboundPorts: '*',
  inboundPortsExclude: [15090, 15021],
  outboundCidrs: ['10.0.0.0/8', 'fd00::/8'],
  outboundExcludeCidrs: [excludedCidr],
  outboundPorts: [443, { first: 8000, last: 8080 }],
  proxyUids: uids,
  redirectDns: true,
  iptablesProbePort: probePort,
  probeTimeoutMs: timeoutMs,
  logTargets: ['stdout'],
};
const key: OptionKey = 'inboundPorts';
const spec: OptionSpec = OPTIONS[key];
const kind: OptionKind = spec.kind;
const group: OptionGroup = spec.group;
const commands: readonly OptionCommand[] | undefined = spec.commands;
const valueName: ValueName = spec.value;
const port: ValueOf<'port'> = capture0().proxyPort;
const portList: ValueTypes['portList'] = capture0().inboundPortsExclude;
const section: OptionSection<'run'> = configFromObject({}, fixedHost()).run;
const dryRunValue: OptionValue<'dryRun'> = section.dryRun;
const ownerGroups: OwnerGroups = { all: false, groups: [1337] };
function capture0(): CaptureConfig {
  return configFromObject({}, fixedHost()).capture;
}
const config: Config = configFromObject(raw, host);
const capture: CaptureConfig = config.capture;
const run: RunConfig = config.run;
const level: LogLevel = run.logLevel;
const targets: readonly LogTarget[] = run.logTargets;
const forced: IptablesBackend | undefined = run.forceIptablesBinary;
const inbound: InboundPorts = capture.inboundPorts;
const outbound: OutboundCidrs = capture.outboundCidrs;
const excluded: CidrSet = capture.outboundExcludeCidrs;
const groups: OwnerGroupFilter = capture.ownerGroups;
const uid: OwnerId | undefined = capture.proxyUids[0];
const plan: Plan = buildPlan(capture);
const v4: FamilyRules = plan.ipv4;
const family: Family = v4.family;
const rule: Rule | undefined = v4.rules[0];
const ruleFamily: RuleFamily | undefined = rule?.family;
const outboundPorts: readonly PortOrRange[] = capture.outboundPorts;
const table: Table | undefined = rule?.table;
const chain: Chain | undefined = rule?.chain;
const own: OwnChain = Chains.OUTPUT;
const builtin: BuiltinChain = 'PREROUTING';
const op: Operation | undefined = rule?.op;
const match: Match | undefined = rule?.matches[0];
const target: Target | undefined = rule?.target;
const protocol: Protocol | undefined = match?.kind === 'protocol' ? match.protocol : undefined;
const cidr: Cidr | undefined = match?.kind === 'destination' ? match.cidr : undefined;
const step: RouteStep | undefined = plan.routes[0];
const dryRun: DryRunOptions = { nft: true, sets: true };
const nftOptions: NftRenderOptions = { sets: true };
const doc: DryRunJson = toDryRunJson(plan, dryRun);
const texts: string[] = [renderRestore(v4), renderNft(plan, nftOptions), renderJson(plan), renderText(plan, dryRun), ...renderIpCommands(plan.routes).map((argv) => argv.join(' '))];

// @ts-expect-error a Plan is not a configuration: the types are real, not any
buildPlan(config);
// @ts-expect-error unknown option keys are refused
configFromObject({ inboundPort: [80] });
// @ts-expect-error modes are a literal union
configFromObject({ mode: 'tproxy' });
// @ts-expect-error ports are numbers
configFromObject({ proxyPort: '15001' });

const flowState: FlowState = 'NEW';
const flow: Flow = { direction: 'inbound', protocol: 'tcp', src: '10.0.0.1', sport: 40000, dst: '10.0.0.2', dport: 8080, state: flowState };
const inputs: FlowInput[] = [parseFlowWords(['inbound', 'tcp', '10.0.0.1', '->', '10.0.0.2:8080']), validateFlow(flow), ...parseFlowLines('').flatMap((l) => ('input' in l ? [l.input] : []))];
const traceOptions: TraceOptions = { localAddresses: ['10.0.0.2'] };
const traced: TraceResult = traceFlow(plan, inputs[0]?.flow ?? flow, traceOptions);
const verdict: Verdict = traced.verdict;
const path: readonly TraceStep[] = traced.path;
const hook: Hook | undefined = path[0]?.hook;
const action: TraceAction | undefined = path[0]?.action;
const why: Provenance | undefined = rule?.why;
const use: OptionUse | undefined = why?.options[0];
const reason: TraceReason = traced.reason;
const landing: TraceLanding | null = traced.landing;
const peer: Endpoint | undefined = landing?.peer;
const expectation: Expectation = parseExpectation('tproxy:15006', '--expect');
const defaults: FlowDefaults = { inInterface: 'eth0', expect: expectation };
const lines: FlowLine[] = parseFlowLines('', defaults);
const explained: DryRunExplanation | undefined = toDryRunJson(plan, { nft: false, explain: true }).explain;
const explainedRule: ExplainedProvenance | undefined = explained?.rules[0];
const explainedOption: ExplainedOption | undefined = explainedRule?.options[0];
const output: OutputFormat = run.output;
const pictures: string[] = [renderPlanSvg(plan), renderPlanMermaid(plan), renderTraceSvg(flow, traced), renderTraceMermaid(flow, traced), why === undefined ? '' : describeProvenance(why)];

const runner: CommandRunner = async (argv: readonly string[], stdin?: string): Promise<CommandResult> => ({ exitCode: argv.length > 0 && stdin !== '' ? 0 : 1, stdout: '', stderr: '' });
// A logger may read a record's fields (the CLI's JSON layout writes them), or ignore them.
const logger: Logger = { error: () => {}, warn: () => {}, info: (_msg: string, fields?: LogFields) => void fields?.['command'], debug: () => {}, enabled: (l: LogLevel) => l !== 'debug' };
const where: NamespaceOptions = { networkNamespace: '/proc/1/ns/net', runner, logger };
const applyOptions: ApplyOptions = { ...applyOptionsFrom(run), ...where, reconcile: false, forceApply: true, nativeNftables: false };
const cleanupOptions: CleanupOptions = { ...where, forceIptablesBinary: 'nft' };
const diffOptions: DiffOptions = where;

function outcomeOf(report: ApplyReport): FamilyOutcome | undefined {
  if (report.kind === 'nftables') {
    const nft: NftablesReport = report;
    return nft.outcome;
  }
  const ipt: IptablesReport = report;
  return ipt.families.ipv4;
}

function describeDiff(report: DiffReport): string {
  const first: FamilyDiff | undefined = report.families[0];
  const rules: readonly RuleDifference[] = first?.rules ?? [];
  const routes: readonly RouteDifference[] = report.routes;
  return `${renderDiff(report)}${renderDiffJson(report)}${rules.map((d) => d.kind).join(',')}${routes.map((r) => r.step.kind).join(',')}`;
}

function sourceOf(err: unknown): string {
  if (err instanceof ConfigError) {
    const source: ValueSource | undefined = err.source;
    return `${source?.kind ?? 'none'} ${err.expected}`;
  }
  if (err instanceof ApplyError) return `${err.command.join(' ')}: ${err.stderr}`;
  if (err instanceof TraceError) return err.message;
  return String(err);
}

export async function main(): Promise<string[]> {
  const fromArgs: Config = await configFromArgs(['-m', 'REDIRECT', '-b', '*'], env, detected);
  const applied = await apply(buildPlan(fromArgs.capture), applyOptions).catch((err: unknown) => sourceOf(err));
  const cleaned = await cleanup(plan, cleanupOptions);
  const diffed = await diff(plan, diffOptions);
  const opened: NamespaceTarget = await openNamespace(where);
  const factsOptions: HostFactsOptions = { env, read: { addresses: true, loopback: false } };
  const facts: HostFacts = await opened.hostFacts(factsOptions);
  const fact: Fact<boolean> = await opened.ipv6(false);
  const ipv6 = fact.value && facts.ipv6Enabled(false);
  const probe: ProbeOptions = { family: 'ipv4', listenPorts: [15001], probePort: 15002, timeoutMs: 1000, uid: 1337, gid: 1337 };
  const probed: ProbeResult = await opened.probe(probe);
  opened.close();
  return [
    typeof applied === 'string' ? applied : (outcomeOf(applied) ?? ''),
    outcomeOf(cleaned) ?? '',
    describeDiff(diffed),
    String(ipv6),
    probed.detail,
    ...texts,
    [kind, group, commands?.join(',') ?? 'all', valueName, port, portList.length, dryRunValue, ownerGroups.all, level, targets.join(','), ruleFamily, outboundPorts.length, forced, inbound.kind, outbound.kind, excluded.hasLoopback, groups.kind, uid, family, table, chain, own, builtin, op?.kind, target?.kind, protocol, cidr?.address, step?.kind, doc.nftScript, verdict, hook, action, use?.key, reason.text, peer?.port, lines.length, explainedOption?.flag, output, DEFAULT_SPORT, ...pictures].join(' '),
  ];
}
