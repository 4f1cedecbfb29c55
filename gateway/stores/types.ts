/**
 * The shared state of the gateway, behind narrow interfaces shaped for its needs
 * (limits, budgets, cache), each with a memory and a Redis implementation that pass
 * one contract suite. main.ts creates the Stores once; they outlive config reloads.
 */
export interface Stores {
  readonly kind: 'memory' | 'redis';
  close(): Promise<void>;
}
