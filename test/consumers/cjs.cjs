// A CommonJS consumer of the installed package (require() of the ESM build, Node 20.19+).
const { buildPlan, configFromArgs, fixedHost, renderJson, renderNft, renderRestore, renderText } = require('istio-iptables-ts');

configFromArgs(process.argv.slice(2), {}, fixedHost({ proxyUid: 1337 })).then((config) => {
  const plan = buildPlan(config.capture);
  const mode = { nft: config.run.nativeNftables, sets: config.run.nftSets };
  process.stdout.write(JSON.stringify({ json: renderJson(plan, mode), text: renderText(plan, mode), restore4: renderRestore(plan.ipv4), nft: renderNft(plan), resolved: require.resolve('istio-iptables-ts') }));
});
