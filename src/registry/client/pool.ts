/**
 * Run `task` over `items` with at most `limit` at once. The first failure stops new tasks from
 * starting; the call still waits for the running ones to settle (so nothing writes after it
 * returned) and then rejects with that first failure.
 */
export async function forEachBounded<T>(items: readonly T[], limit: number, task: (item: T, signal: AbortSignal) => Promise<void>): Promise<void> {
  const abort = new AbortController();
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await task(item, abort.signal);
      } catch (e) {
        if (!failure) failure = { error: e };
        abort.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.error;
}
