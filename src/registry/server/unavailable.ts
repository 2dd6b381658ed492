// Is a thrown error a backend (PostgreSQL, the S3 store) that cannot be reached right now? Such
// a request failed for a reason that passes: the client gets 503 and tries again, instead of a 500
// that reads like a bug in kiln, or, worse, an answer built on a query that never ran.
//
// Errors arrive wrapped (the S3 driver's "storage s3: get …" errors carry the SDK's as `cause`;
// Node's connect errors to several addresses are AggregateErrors), so the whole chain is looked at.

/** Socket-level failures, from pg and from the AWS SDK's Node HTTP handler alike. */
const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

/**
 * PostgreSQL SQLSTATEs of a server that is not there for us: class 08 (connection exception),
 * 57P01 admin_shutdown (fast shutdown ended our session), 57P02 crash_shutdown, 57P03
 * cannot_connect_now (starting up or shutting down).
 */
const postgresUnavailable = (code: string): boolean => /^08[0-9A-Z]{3}$/.test(code) || code === '57P01' || code === '57P02' || code === '57P03';

/** pg's own messages for a connection it lost or could not make; they carry no code. */
const pgMessages = [/^Connection terminated/, /timeout exceeded when trying to connect/, /^Client has encountered a connection error/, /Connection terminated due to connection timeout/];

/** The S3 store answering that it cannot serve now: 500 InternalError and 503 SlowDown/ServiceUnavailable are retryable by S3's own rules. */
const storeStatuses = new Set([500, 502, 503, 504]);

function unavailableHere(e: object): boolean {
  const x = e as { code?: unknown; name?: unknown; message?: unknown; $metadata?: { httpStatusCode?: unknown } };
  if (typeof x.code === 'string' && (networkCodes.has(x.code) || postgresUnavailable(x.code))) return true;
  // the AWS SDK: a request that did not finish in time (connectionTimeout, requestTimeout)
  if (x.name === 'TimeoutError') return true;
  const status = x.$metadata?.httpStatusCode;
  if (typeof status === 'number' && storeStatuses.has(status)) return true;
  const message = typeof x.message === 'string' ? x.message : '';
  if (pgMessages.some((re) => re.test(message))) return true;
  // Node's http client: the server closed the socket before answering
  return message === 'socket hang up';
}

/** True when `e`, or an error it wraps, says PostgreSQL or the S3 store is unreachable or refusing service for now. */
export function isBackendUnavailable(e: unknown): boolean {
  const seen = new Set<unknown>();
  const pending: unknown[] = [e];
  while (pending.length) {
    const x = pending.pop();
    if (typeof x !== 'object' || x === null || seen.has(x)) continue;
    seen.add(x);
    if (unavailableHere(x)) return true;
    pending.push((x as { cause?: unknown }).cause);
    const inner = (x as { errors?: unknown }).errors;
    if (Array.isArray(inner)) pending.push(...inner);
  }
  return false;
}
