// The PostgreSQL type ids (pg_type.oid) that the file formats write in types of
// their own (src/json-lines.ts, src/arrow-batch.ts); any other column is text.
export const BOOL = 16;
export const INT8 = 20;
export const INT2 = 21;
export const INT4 = 23;
export const FLOAT4 = 700;
export const FLOAT8 = 701;
export const NUMERIC = 1700;
export const TIMESTAMPTZ = 1184;
