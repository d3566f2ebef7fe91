// A PromQL input with completion of metric names, label names and label
// values from the Prometheus API, and of function names.

import { get, labelValues } from './api';
import { h } from './dom';

const FUNCTIONS = [
  'abs', 'absent', 'absent_over_time', 'avg', 'avg_over_time', 'bottomk', 'ceil', 'changes', 'clamp', 'clamp_max',
  'clamp_min', 'count', 'count_over_time', 'count_values', 'day_of_month', 'day_of_week', 'delta', 'deriv', 'exp',
  'floor', 'group', 'histogram_quantile', 'holt_winters', 'hour', 'idelta', 'increase', 'irate', 'label_join',
  'label_replace', 'last_over_time', 'ln', 'log2', 'log10', 'max', 'max_over_time', 'min', 'min_over_time', 'minute',
  'month', 'predict_linear', 'quantile', 'quantile_over_time', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sort',
  'sort_desc', 'sqrt', 'stddev', 'stddev_over_time', 'stdvar', 'sum', 'sum_over_time', 'time', 'timestamp', 'topk',
  'vector', 'year',
];

let metricNames: Promise<string[]> | undefined;
const labelCache = new Map<string, Promise<string[]>>();

function cached(key: string, load: () => Promise<string[]>): Promise<string[]> {
  if (!labelCache.has(key)) labelCache.set(key, load().catch(() => []));
  return labelCache.get(key)!;
}

/** What to complete at the cursor: the word typed so far and its candidates. */
async function candidates(text: string, at: number): Promise<{ word: string; items: string[] }> {
  const before = text.slice(0, at);
  // Inside a selector's braces: label names, or a label's values after `=`.
  const open = before.lastIndexOf('{');
  if (open > before.lastIndexOf('}')) {
    const metric = /([a-zA-Z_:][\w:]*)\s*$/.exec(before.slice(0, open))?.[1];
    const match = metric ? `${metric}` : undefined;
    const value = /([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)$/.exec(before);
    if (value) {
      const items = await cached(`v:${value[1]}:${match}`, () => labelValues(value[1], match));
      return { word: value[3], items };
    }
    const word = /([a-zA-Z_]\w*)?$/.exec(before)?.[1] ?? '';
    const items = await cached(`l:${match}`, () =>
      get<{ data: string[] }>('/prometheus/api/v1/labels', { 'match[]': match ? [match] : undefined }).then((r) => r.data.filter((l) => l !== '__name__')),
    );
    return { word, items };
  }
  const word = /([a-zA-Z_:][\w:]*)$/.exec(before)?.[1] ?? '';
  if (!word) return { word, items: [] };
  metricNames ??= labelValues('__name__').catch(() => []);
  return { word, items: [...FUNCTIONS, ...(await metricNames)] };
}

/** A textarea with a completion list; Enter runs `onRun` (Shift+Enter for a new line). */
export function promqlEditor(value: string, onRun: () => void, label = 'PromQL query'): { el: HTMLElement; input: HTMLTextAreaElement } {
  const input = h('textarea', { rows: 1, spellcheck: false, 'aria-label': label, placeholder: 'rate(http_server_request_duration_seconds_count[5m])', autocomplete: 'off', 'aria-autocomplete': 'list' });
  input.value = value;
  const list = h('ul', { class: 'suggest', role: 'listbox', hidden: true });
  let items: string[] = [];
  let word = '';
  let active = 0;
  let seq = 0;

  const close = () => {
    list.hidden = true;
    items = [];
  };
  const show = () => {
    list.replaceChildren(
      ...items.map((item, i) =>
        h('li', { role: 'option', 'aria-selected': i === active ? 'true' : 'false', onmousedown: (e: Event) => (e.preventDefault(), accept(i)) }, item),
      ),
    );
    list.hidden = !items.length;
    (list.children[active] as HTMLElement | undefined)?.scrollIntoView({ block: 'nearest' });
  };
  const accept = (i: number) => {
    const at = input.selectionStart ?? input.value.length;
    const choice = items[i];
    input.value = input.value.slice(0, at - word.length) + choice + input.value.slice(at);
    const caret = at - word.length + choice.length;
    input.setSelectionRange(caret, caret);
    close();
    input.focus();
  };
  input.addEventListener('input', async () => {
    const mine = ++seq;
    const at = input.selectionStart ?? input.value.length;
    const c = await candidates(input.value, at);
    if (mine !== seq) return;
    word = c.word;
    const lower = word.toLowerCase();
    items = c.items.filter((i) => i.toLowerCase().startsWith(lower) && i !== word).slice(0, 50);
    if (items.length < 50) items.push(...c.items.filter((i) => !i.toLowerCase().startsWith(lower) && i.toLowerCase().includes(lower)).slice(0, 50 - items.length));
    active = 0;
    show();
  });
  input.addEventListener('keydown', (e) => {
    if (!list.hidden && items.length) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        active = (active + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
        return show();
      }
      if (e.key === 'Tab' || e.key === 'Enter') {
        e.preventDefault();
        return accept(active);
      }
      if (e.key === 'Escape') return close();
    }
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      onRun();
    }
  });
  input.addEventListener('blur', () => window.setTimeout(close, 100));
  return { el: h('div', { class: 'editor' }, input, list), input };
}
