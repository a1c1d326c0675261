/**
 * Pictures: the plan's chain graph (`--dry-run --output svg|mermaid`) and the diagram model with
 * its SVG and Mermaid renderings, which trace's packet picture uses too. Loaded only when a
 * picture is asked for (on the entrypoint, with trace's script: never on the init container's
 * hot path).
 */
export { planDiagram, renderPlanMermaid, renderPlanSvg } from './chains.js';
export { renderMermaid, renderSvg, type Diagram, type DiagramEdge, type DiagramLane, type DiagramNode, type NodeKind } from './diagram.js';
