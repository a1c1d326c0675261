/** The golden modes: one realistic flag set per capability (golden/modes/<name>.txt holds each dry run). */
const SIDECAR = ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];
const V4 = '--enable-ipv6=false';
const V6 = '--enable-ipv6=true';

export const MODES: Record<string, readonly string[]> = {
  'sidecar-redirect': [...SIDECAR, V4],
  'sidecar-redirect-json': [...SIDECAR, V4, '--output', 'json'],
  'sidecar-tproxy': [...SIDECAR, '-m', 'TPROXY', V4],
  'sidecar-tproxy-dual-stack': [...SIDECAR, '-m', 'TPROXY', '--dual-stack', V6],
  'dual-stack-redirect': [...SIDECAR, '-x', '10.96.0.10/32,fd00:10:96::a/128', '--dual-stack', V6],
  'dns-servers': [...SIDECAR, V6, '--redirect-dns', '--dns-servers', '10.96.0.10,fd00:10:96::a'],
  'dns-capture-all': [...SIDECAR, V6, '--redirect-dns', '--capture-all-dns'],
  'dns-without-servers': [...SIDECAR, V4, '--redirect-dns', '--dns-servers', ''],
  'drop-invalid': [...SIDECAR, V4, '--drop-invalid'],
  'owner-groups-include': [...SIDECAR, V4, '--outbound-owner-groups', 'java,202'],
  'owner-groups-exclude': [...SIDECAR, V4, '--outbound-owner-groups-exclude', '888,ftp'],
  'exclude-interfaces-tproxy': [...SIDECAR, '-m', 'TPROXY', V4, '-c', 'eth1,net1'],
  'virt-interfaces-cidrs': [...SIDECAR, V4, '-k', 'vnet0,vnet1', '-i', '10.0.0.0/8,172.16.0.0/12'],
  'outbound-ports-include': [...SIDECAR, V4, '-i', '', '-q', '443,8443'],
  'outbound-ports-exclude': [...SIDECAR, V4, '-o', '3306,5432'],
  'inbound-ports-listed': [...SIDECAR, V4, '-b', '8080,9090'],
  'inbound-ports-listed-tproxy': [...SIDECAR, V4, '-m', 'TPROXY', '-b', '8080,9090'],
  'inbound-ports-none': [...SIDECAR, V4, '-b', ''],
  'loopback-cidr': [...SIDECAR, V4, '--ipv4-loopback-cidr', '127.0.0.0/8'],
  'tunnel-port-and-marks': [...SIDECAR, V6, '-m', 'TPROXY', '-e', '15009', '-t', '4242', '-r', '142'],
};
