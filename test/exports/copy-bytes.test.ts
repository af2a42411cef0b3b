// JSONL and Parquet are made from COPY's CSV read as bytes (src/copy-csv.ts,
// src/json-lines.ts, src/arrow-batch.ts). Checked against PostgreSQL itself:
// each JSON line is row_to_json's text of the same row, and each Arrow value
// the row's value as PostgreSQL gives it in other terms (epoch microseconds,
// numbers' text), whatever the size of the chunks the COPY arrives in.
import * as arrow from "apache-arrow";
import type pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { to as copyTo } from "pg-copy-streams";
import { ArrowBatch, arrowTypeOf } from "../../src/arrow-batch.ts";
import { CsvRows } from "../../src/copy-csv.ts";
import { JsonLines } from "../../src/json-lines.ts";
import { useTestDatabase } from "../support/db.ts";

const db = useTestDatabase();
let client: pg.PoolClient;

// Every byte below 0x20, quotes, backslashes, commas and line ends, multi-byte
// characters, empty text apart from NULL, numbers that are not numbers, and
// numbers with more digits than a double holds exactly.
const ROWS = `select i as id, case i when 5 then 9007199254740993 when 6 then -9007199254740993 else -i end as big,
       i::int4 as small, (i % 2 = 0) as even,
       case i when 1 then null when 2 then '' when 3 then 'He said "hi, there",' || chr(10) || 'a back\\slash, CRLF' || chr(13) || chr(10)
              when 4 then (select string_agg(chr(c), '') from generate_series(1, 31) c) when 5 then '"' when 6 then '""'
              when 7 then 'emoji 🎉👩‍💻 — done' when 8 then ',' else repeat('long text ', i) end as body,
       case i when 1 then null when 2 then 'NaN'::numeric when 3 then -12.5 when 4 then 'Infinity'::numeric
            when 9 then 1234567890.123456789 when 10 then 0.000000000000000001 when 11 then 1.25
            else i * 1.234567890123456789012 end as score,
       case i when 1 then null when 2 then 'NaN'::float8 when 3 then '-Infinity'::float8
            when 5 then 0.1::float8 + 0.2::float8 else i / 3.0::float8 end as ratio,
       case when i = 1 then null else timestamptz '2025-01-31 09:15:00+00' + i * interval '1 day 7 microseconds' end as at,
       timestamptz '1999-12-31 23:59:59+00' + i * interval '1 second' as whole_seconds
  from generate_series(1, 40) i order by i`;

beforeAll(async () => {
  client = await db.pool.connect();
  await client.query("set TimeZone = 'UTC'; set DateStyle = 'ISO'");
});

afterAll(() => client?.release());

/** The COPY's CSV, cut into chunks of `size` bytes. */
async function copyChunks(size: number): Promise<Buffer[]> {
  const parts: Buffer[] = [];
  for await (const chunk of client.query(copyTo(`COPY (${ROWS}) TO STDOUT WITH (FORMAT csv)`))) parts.push(chunk as Buffer);
  const whole = Buffer.concat(parts);
  const chunks: Buffer[] = [];
  for (let at = 0; at < whole.length; at += size) chunks.push(whole.subarray(at, at + size));
  return chunks;
}

async function columns() {
  const { fields } = await client.query(`select * from (${ROWS}) q limit 0`);
  return fields.map((field) => ({ name: field.name, dataTypeID: field.dataTypeID }));
}

it.each([1, 3, 7, 64, 65_536])("writes each row as row_to_json does, from chunks of %i bytes", async (size) => {
  const expected = (await client.query<{ line: string }>(`select row_to_json(q)::text as line from (${ROWS}) q`)).rows.map((row) => row.line);
  const cols = await columns();
  const csv = new CsvRows(cols.length);
  const lines = new JsonLines(cols);
  const written: Buffer[] = [];
  for (const chunk of await copyChunks(size)) {
    csv.push(chunk, (bytes, fields) => lines.row(bytes, fields));
    written.push(lines.take());
  }
  expect(csv.pending).toBe(false);
  expect(Buffer.concat(written).toString("utf8").split("\n")).toEqual([...expected, ""]);
});

it.each([1, 5, 65_536])("builds Arrow columns with PostgreSQL's values, from chunks of %i bytes", async (size) => {
  const cols = await columns();
  const schema = new arrow.Schema(cols.map((column) => new arrow.Field(column.name, arrowTypeOf(column.dataTypeID), true)));
  const csv = new CsvRows(cols.length);
  // Batches of 16 rows: values land in batches after the first, and a last one part full.
  const batches: arrow.RecordBatch[] = [];
  let batch = new ArrowBatch(schema, cols.map((column) => column.dataTypeID), 16);
  for (const chunk of await copyChunks(size)) {
    csv.push(chunk, (bytes, fields) => {
      batch.add(bytes, fields);
      if (batch.length === 16) {
        batches.push(batch.finish());
        batch = new ArrowBatch(schema, cols.map((column) => column.dataTypeID), 16);
      }
    });
  }
  batches.push(batch.finish());
  const table = new arrow.Table(batches);
  const { rows: expected } = await client.query(`select id::text, big::text, small, even, body, score::text, ratio::text,
      (extract(epoch from at) * 1000000)::bigint::text as at, (extract(epoch from whole_seconds) * 1000000)::bigint::text as whole_seconds
    from (${ROWS}) q`);
  const number = (text: string | null) => (text === null ? null : Number(text));
  expect(table.numRows).toBe(expected.length);
  // Arrow reads timestamps back as milliseconds (microseconds / 1000).
  expect(table.toArray().map((row) => ({ ...row.toJSON(), id: String(row.toJSON().id), big: String(row.toJSON().big) }))).toEqual(expected.map((row) => ({
    id: row.id, big: row.big, small: row.small, even: row.even, body: row.body, score: number(row.score), ratio: number(row.ratio),
    at: row.at === null ? null : Number(row.at) / 1000, whole_seconds: Number(row.whole_seconds) / 1000,
  })));
});
