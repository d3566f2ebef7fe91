// Service map: the dependency graph with call and error rates on the edges,
// laid out with dagre; a node opens its service's traces.

import dagre from '@dagrejs/dagre';
import { get } from '../api';
import { EMPTY_INGEST, colour, fill, h, notice, num } from '../dom';
import { href, nanos } from '../route';
import type { Ctx, View } from '../view';

interface Edge {
  parent: string;
  child: string;
  callCount: number;
  errorCount: number;
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag: string, attrs: Record<string, string | number>, ...children: (Node | string)[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

export const serviceMap: View = {
  title: 'Service map',
  timed: true,
  async render(ctx: Ctx) {
    const { edges } = await get<{ edges: Edge[] }>('/api/dependencies', { start: nanos(ctx.range.start), end: nanos(ctx.range.end) });
    if (!ctx.live()) return;
    if (!edges.length) {
      fill(ctx.root, h('h1', null, 'Service map'), notice('empty', 'No calls between services in this time range. The map is drawn from spans whose parent ran in another service. ', ...EMPTY_INGEST));
      return;
    }
    const seconds = (ctx.range.end - ctx.range.start) / 1000;
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: 'LR', nodesep: 40, ranksep: 120, marginx: 20, marginy: 20 });
    g.setDefaultEdgeLabel(() => ({}));
    const names = [...new Set(edges.flatMap((e) => [e.parent, e.child]))];
    for (const n of names) g.setNode(n, { width: Math.max(90, n.length * 8 + 30), height: 36 });
    for (const e of edges) g.setEdge(e.parent, e.child, { width: 110, height: 16 });
    dagre.layout(g);
    const { width = 400, height = 200 } = g.graph();
    const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'Service dependency graph', style: `max-height:70vh;height:${height}px` });
    root.append(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, svg('path', { d: 'M0 0L10 5L0 10z', fill: '#8c959f' }))));
    for (const e of edges) {
      const points = g.edge(e.parent, e.child).points;
      const d = points.map((p: { x: number; y: number }, i: number) => `${i ? 'L' : 'M'}${p.x} ${p.y}`).join(' ');
      const mid = points[Math.floor(points.length / 2)];
      const ratio = e.callCount ? e.errorCount / e.callCount : 0;
      const label = `${num(e.callCount / seconds, '/s')} · ${(ratio * 100).toFixed(1)}% err`;
      root.append(
        svg(
          'g',
          { class: `edge${ratio > 0.01 ? ' failing' : ''}`, 'data-edge': `${e.parent}->${e.child}` },
          svg('path', { d, 'marker-end': 'url(#arrow)' }),
          svg('text', { x: mid.x, y: mid.y - 6, 'text-anchor': 'middle' }, label),
          svg('title', {}, `${e.parent} → ${e.child}: ${e.callCount} calls, ${e.errorCount} failed`),
        ),
      );
    }
    for (const n of names) {
      const { x, y, width: w, height: hh } = g.node(n);
      const node = svg(
        'g',
        { class: 'node', tabindex: 0, role: 'link', 'aria-label': `${n}: open traces`, 'data-service': n },
        svg('rect', { x: x - w / 2, y: y - hh / 2, width: w, height: hh, rx: 8, stroke: colour(n) }),
        svg('text', { x, y: y + 4, 'text-anchor': 'middle' }, n),
      );
      const open = () => (location.hash = href('traces', { service: n, from: ctx.params.get('from') ?? undefined, to: ctx.params.get('to') ?? undefined }));
      node.addEventListener('click', open);
      node.addEventListener('keydown', (e) => (e as KeyboardEvent).key === 'Enter' && open());
      root.append(node);
    }
    fill(ctx.root, h('h1', null, 'Service map'), h('p', { class: 'muted' }, 'Calls per second and the share that failed, over the time range. Select a service to see its traces.'), h('div', { class: 'map' }, root));
  },
};
