/**
 * istio-iptables-ts: the public API. Re-exports only; importing it has no side effects.
 * Every change to this surface shows in api/istio-iptables-ts.d.ts (`npm run api:update`).
 */

// Errors.
export { ConfigError, ApplyError, type ValueSource } from './errors.js';
export { TraceError } from './trace/types.js';

// Configuration: from Istio's args and environment, or from a typed object; host facts detected or fixed.
export { configFromArgs, configFromObject } from './config/from.js';
export { detectHost, fixedHost, type HostFacts } from './config/host.js';
export { OPTIONS, type ConfigInput, type OptionCommand, type OptionGroup, type OptionInput, type OptionKey, type OptionKind, type OptionSection, type OptionSpec, type OptionValue, type RawOptions } from './config/options.js';
export type { Config, CaptureConfig, RunConfig, OwnerGroupFilter } from './config/config.js';
export type { CidrInput, CidrSet, DnsServers, InboundPorts, IptablesBackend, LogLevel, LogTarget, OutboundCidrs, OutputFormat, OwnerGroups, ValueInput, ValueInputs, ValueName, ValueOf, ValueTypes } from './config/values.js';

// The plan: rules and routing steps as data.
export { buildPlan } from './build/plan.js';
export {
  Chains,
  type BuiltinChain,
  type Chain,
  type Cidr,
  type Family,
  type FamilyRules,
  type Match,
  type Operation,
  type OptionUse,
  type OwnChain,
  type OwnerId,
  type Plan,
  type PortOrRange,
  type Protocol,
  type Provenance,
  type RouteStep,
  type Rule,
  type RuleFamily,
  type Table,
  type Target,
} from './model/rule.js';

// Renderers: pure, plan to text.
export { renderRestore } from './render/restore.js';
export { renderNft, type NftRenderOptions } from './render/nft/index.js';
export { renderIpCommands } from './render/ip.js';
export { renderJson, renderText, toDryRunJson, type DryRunExplanation, type DryRunJson, type DryRunOptions } from './render/dryrun.js';
export { describeProvenance, type ExplainedOption, type ExplainedProvenance } from './render/explain.js';
// Pictures: the plan's chain graph and a traced packet's path, as SVG or Mermaid.
export { renderPlanMermaid, renderPlanSvg } from './render/picture/chains.js';
export { renderTraceMermaid, renderTraceSvg } from './trace/picture.js';
export { renderDiff, renderDiffJson } from './render/diff.js';

// Acting on a network namespace.
export {
  apply,
  cleanup,
  diff,
  openNamespace,
  applyOptionsFrom,
  type ApplyOptions,
  type ApplyReport,
  type CleanupOptions,
  type CommandResult,
  type CommandRunner,
  type DiffOptions,
  type FamilyOutcome,
  type HostFactsOptions,
  type IptablesReport,
  type NamespaceOptions,
  type NamespaceTarget,
  type NftablesReport,
} from './api/namespace.js';
export type { DiffReport, FamilyDiff, RouteDifference, RuleDifference } from './apply/diff.js';
export type { Fact } from './platform/platform.js';
export type { ProbeOptions, ProbeResult } from './apply/probe.js';
export type { Logger, LogFields } from './log.js';

// trace: a flow walked offline through a plan.
export { traceFlow } from './trace/trace.js';
export { DEFAULT_SPORT, parseExpectation, parseFlowLines, parseFlowWords, validateFlow, type FlowDefaults, type FlowInput, type FlowLine } from './trace/flow.js';
export type { Endpoint, Expectation, Flow, FlowState, Hook, TraceAction, TraceLanding, TraceOptions, TraceReason, TraceResult, TraceStep, Verdict } from './trace/types.js';
