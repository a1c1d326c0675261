import { cidrText } from '../config/net.js';
import type { RouteStep } from '../model/rule.js';

/** A routing step as an `ip` argv. */
export function routeArgs(step: RouteStep): string[] {
  const fam = step.family === 'ipv4' ? '-4' : '-6';
  switch (step.kind) {
    case 'loopbackAddress':
      return ['ip', fam, 'addr', 'add', cidrText(step.cidr), 'dev', 'lo'];
    case 'fwmarkRule':
      return ['ip', fam, 'rule', 'add', 'fwmark', String(step.mark), 'lookup', String(step.table)];
    case 'localRoute':
      return ['ip', fam, 'route', 'add', 'local', step.family === 'ipv4' ? '0.0.0.0/0' : '::/0', 'dev', 'lo', 'table', String(step.table)];
  }
}

/** The plan's routing steps, each as an `ip` argv (the dry run's `ipCommands`). */
export function renderIpCommands(steps: readonly RouteStep[]): string[][] {
  return steps.map(routeArgs);
}

/** The `ip` argv undoing a step. */
export function routeDelArgs(step: RouteStep): string[] {
  return routeArgs(step).map((a) => (a === 'add' ? 'del' : a));
}
