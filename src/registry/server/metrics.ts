/**
 * Counters for /metrics in the Prometheus text exposition format: requests by route, method and
 * status, bytes in and out, request durations; gauges are read when scraped.
 */
export interface Metrics {
  request(route: string, method: string, status: number, seconds: number, bytesIn: number, bytesOut: number): void;
  render(gauges: { name: string; help: string; value: number }[]): string;
}

const buckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];

export function metrics(): Metrics {
  const requests = new Map<string, number>();
  const durations = new Map<string, { counts: number[]; sum: number; n: number }>();
  let bytesIn = 0;
  let bytesOut = 0;
  return {
    request(route, method, status, seconds, bin, bout) {
      const k = `route="${route}",method="${method}",status="${status}"`;
      requests.set(k, (requests.get(k) ?? 0) + 1);
      let d = durations.get(route);
      if (!d) durations.set(route, (d = { counts: buckets.map(() => 0), sum: 0, n: 0 }));
      for (let i = 0; i < buckets.length; i++) if (seconds <= buckets[i]!) d.counts[i]!++;
      d.sum += seconds;
      d.n++;
      bytesIn += bin;
      bytesOut += bout;
    },
    render(gauges) {
      const out: string[] = [];
      out.push('# HELP kiln_registry_http_requests_total HTTP requests by route, method and status.');
      out.push('# TYPE kiln_registry_http_requests_total counter');
      for (const [k, v] of requests) out.push(`kiln_registry_http_requests_total{${k}} ${v}`);
      out.push('# HELP kiln_registry_http_request_duration_seconds Time to answer a request, by route.');
      out.push('# TYPE kiln_registry_http_request_duration_seconds histogram');
      for (const [route, d] of durations) {
        buckets.forEach((b, i) => out.push(`kiln_registry_http_request_duration_seconds_bucket{route="${route}",le="${b}"} ${d.counts[i]}`));
        out.push(`kiln_registry_http_request_duration_seconds_bucket{route="${route}",le="+Inf"} ${d.n}`);
        out.push(`kiln_registry_http_request_duration_seconds_sum{route="${route}"} ${d.sum}`);
        out.push(`kiln_registry_http_request_duration_seconds_count{route="${route}"} ${d.n}`);
      }
      out.push('# HELP kiln_registry_http_request_bytes_total Bytes received in request bodies.');
      out.push('# TYPE kiln_registry_http_request_bytes_total counter');
      out.push(`kiln_registry_http_request_bytes_total ${bytesIn}`);
      out.push('# HELP kiln_registry_http_response_bytes_total Bytes sent in response bodies.');
      out.push('# TYPE kiln_registry_http_response_bytes_total counter');
      out.push(`kiln_registry_http_response_bytes_total ${bytesOut}`);
      for (const g of gauges) {
        out.push(`# HELP ${g.name} ${g.help}`);
        out.push(`# TYPE ${g.name} gauge`);
        out.push(`${g.name} ${g.value}`);
      }
      return out.join('\n') + '\n';
    },
  };
}
