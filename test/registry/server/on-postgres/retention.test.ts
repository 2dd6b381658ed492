// retention.test.ts's tests with the registry's metadata in PostgreSQL: both backends pass the same suite.
import { onPostgres } from '../support.js';

if (await onPostgres()) await import('../retention.test.js');
