// An ESM consumer of the installed package: flags to a plan, rendered every way.
import { buildPlan, configFromArgs, fixedHost, renderJson, renderNft, renderRestore, renderText } from 'istio-iptables-ts';

const config = await configFromArgs(process.argv.slice(2), {}, fixedHost({ proxyUid: 1337 }));
const plan = buildPlan(config.capture);
const mode = { nft: config.run.nativeNftables, sets: config.run.nftSets };
process.stdout.write(JSON.stringify({ json: renderJson(plan, mode), text: renderText(plan, mode), restore4: renderRestore(plan.ipv4), nft: renderNft(plan) }));
