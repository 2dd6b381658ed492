import type { TagOrder } from './metadata.js';
import { MediaType } from '../../../oci/mediatypes.js';

// SQL both backends share for pages of tags: keyset pagination ("after this row", never OFFSET),
// so page 100 of 5,000 tags costs what page 1 does. The push-time order goes by (updated_at, tag)
// on the index tags_pushed (repo, updated_at, tag); the name order by the primary key (repo, tag).

export const IndexMediaTypes: readonly string[] = [MediaType.OciIndex, MediaType.DockerManifestList];

/** The ORDER BY of an order and the condition "after the cursor", with the backend's placeholders. */
export function tagOrderSql(order: TagOrder, param: () => string): { orderBy: string; after: string } {
  const dir = order.descending ? 'DESC' : 'ASC';
  const cmp = order.descending ? '<' : '>';
  if (order.by === 'name') return { orderBy: `t.tag ${dir}`, after: `t.tag ${cmp} ${param()}` };
  const a = param();
  const b = param();
  return { orderBy: `t.updated_at ${dir}, t.tag ${dir}`, after: `(t.updated_at, t.tag) ${cmp} (${a}, ${b})` };
}
