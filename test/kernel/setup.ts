import { execa } from 'execa';

/**
 * Kernel tests need root, network namespaces, iptables (both backends) and iproute2. When any is
 * missing they fail here, loudly, instead of skipping: CI installs them (.ci/run).
 */
export default async function setup(): Promise<void> {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('kernel tests must run as root (they create network namespaces)');
  for (const bin of ['ip', 'iptables-nft-restore', 'ip6tables-nft-restore', 'iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-restore', 'ip6tables-legacy-restore', 'iptables-legacy-save', 'ip6tables-legacy-save', 'nft', 'flock', 'setpriv', 'setcap', 'python3']) {
    const r = await execa('sh', ['-c', `command -v ${bin}`], { reject: false });
    if (r.exitCode !== 0) problems.push(`${bin} not found (apt-get install -y iptables iproute2)`);
  }
  if (problems.length > 0) throw new Error(`kernel test prerequisites missing:\n- ${problems.join('\n- ')}`);
  // Two of Istio's cases name groups ("java", "ftp"); iptables resolves names when rules load.
  for (const group of ['java', 'ftp']) {
    const known = await execa('getent', ['group', group], { reject: false });
    if (known.exitCode !== 0) await execa('groupadd', ['--force', group]);
  }
}
