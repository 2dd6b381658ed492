// browse.test.ts's tests with the registry's metadata in PostgreSQL: pages of tags, sessions' table and visibility on both backends.
import { onPostgres } from '../support.js';

if (await onPostgres()) await import('../browse.test.js');
