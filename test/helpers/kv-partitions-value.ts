/** The value the partitioned KV SIGKILL child stores under `key`: recognisable, not trivially small. */
export const valueOf = (key: string): { key: string; pad: string } => ({ key, pad: 'p'.repeat(key.length * 3) });
