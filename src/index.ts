/** istio-iptables-ts: the public API. Re-exports only; importing it has no side effects. */
export { ConfigError, ApplyError, describeSource, type ValueSource } from './errors.js';
export { OPTIONS, OPTION_KEYS, type OptionKey, type OptionSpec, type RawOptions } from './config/options.js';
export { OPTION_HELP, type OptionHelp, type OptionGroup } from './config/help.js';
export type { Config, CaptureConfig, RunConfig, OwnerGroupFilter } from './config/config.js';
export { parseOptions, resolveConfig, type RawInput, type ParsedOptions } from './config/parse.js';
export { configFromArgs, configFromObject } from './config/from.js';
export { detectHost, fixedHost, type HostFacts } from './config/host.js';
export type * from './model/rule.js';
export { Chains, BUILTIN_CHAINS } from './model/rule.js';
export { buildPlan, chainsOf } from './build/plan.js';
export { renderRestore, renderRule, ruleArgs } from './render/restore.js';
export { renderIpCommands, routeArgs } from './render/ip.js';
export { renderJson, renderText, toDryRunJson, type DryRunJson, type DryRunOptions } from './render/dryrun.js';
export { renderNft, nftChainName, NFT_TABLES, type NftRenderOptions } from './render/nft/index.js';
export { main } from './cli.js';
export { createParser } from './parser.js';
export { collectRaw, normalizeArgs, rawFromArgs } from './args.js';
export {
  traceFlow,
  validateFlow,
  parseFlowWords,
  parseFlowLines,
  TraceError,
  type Flow,
  type FlowState,
  type TraceOptions,
  type TraceResult,
  type TraceStep,
  type TraceAction,
  type Verdict,
  type Hook,
} from './trace/index.js';
