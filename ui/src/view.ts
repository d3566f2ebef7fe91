// What every view gets from the shell.

import type { Range } from './route';

export interface Ctx {
  root: HTMLElement;
  params: URLSearchParams;
  range: Range;
  /** Registers work to undo when the view is left or redrawn (timers, sockets). */
  cleanup(fn: () => void): void;
  /** False once the view has been left or redrawn: late answers are dropped. */
  live(): boolean;
}

export interface View {
  title: string;
  /** Shown in the navigation bar. */
  nav?: boolean;
  /** Redrawn on the auto-refresh tick and when the time range changes. */
  timed?: boolean;
  render(ctx: Ctx): void | Promise<void>;
}
