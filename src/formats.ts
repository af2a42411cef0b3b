// The file formats of feed runs and exports (and their streams): each turns a
// SELECT, read on the run's or export's connection inside its snapshot, into
// the stages of one file. (Exports write CSV with their own stream, which adds
// Excel's BOM and counts rows as they pass: src/tasks/export.ts.)
//   csv     COPY ... (FORMAT csv, HEADER), as exports write it; gzip optional.
//   jsonl   rows fetched from a cursor in batches, one JSON object per line
//           as row_to_json writes it; gzip optional.
//   parquet rows fetched from a cursor in batches, typed Arrow columns
//           (integers, timestamptz as UTC microseconds, numerics as doubles,
//           text, booleans), written by parquet-wasm in zstd-compressed row
//           groups as they come.
// Memory holds a batch or a COPY chunk at a time, whatever the number of rows.
import * as arrow from "apache-arrow";
import * as parquet from "parquet-wasm";
import { Readable, type Transform } from "node:stream";
import { ReadableStream } from "node:stream/web";
import { createGzip } from "node:zlib";
import type pg from "pg";
import { to as copyTo, type CopyToStreamQuery } from "pg-copy-streams";

export const FILE_FORMATS = ["csv", "jsonl", "parquet"] as const;
export type FileFormat = (typeof FILE_FORMATS)[number];

export interface FormatOptions {
  gzip?: boolean;
  excel?: boolean;
}

/** A file being written: its stages, its name's extension, and its row count (so far; all once read to the end). */
export interface FormattedFile {
  stages: [Readable, ...Transform[]];
  extension: string;
  rows(): number;
}

/** The columns that name an agent, of the kinds' files: few distinct values. */
const AGENT_COLUMNS = ["source", "selected_agent", "agent"];

/** Rows per Parquet row group, and per cursor fetch: a few MB of memory at most. */
const BATCH_ROWS = 10_000;

export function formatFile(client: pg.PoolClient, query: string, format: FileFormat, options: FormatOptions): FormattedFile {
  if (format === "parquet") return parquetFile(client, query);
  const file = format === "csv" ? csvFile(client, query) : jsonlFile(client, query);
  return {
    stages: options.gzip ? [file.stream, createGzip()] : [file.stream],
    extension: options.gzip ? `${format}.gz` : format,
    rows: file.rows,
  };
}

/** A COPY TO STDOUT as CSV with a header, as a stream that starts when first read, so nothing runs for a file never written. */
function csvFile(client: pg.PoolClient, query: string) {
  let copy: CopyToStreamQuery | undefined;
  const stream = new Readable({
    read: () => {
      if (copy) return void copy.resume();
      copy = client.query(copyTo(`COPY (${query}) TO STDOUT WITH (FORMAT csv, HEADER)`));
      copy.on("data", (chunk: Buffer) => {
        if (!stream.push(chunk)) copy!.pause();
      });
      copy.once("end", () => stream.push(null));
      // on, not once: a COPY cut short fails again when its connection closes.
      copy.on("error", (error) => stream.destroy(error));
    },
    destroy: (error, callback) => {
      copy?.destroy();
      callback(error);
    },
  });
  return { stream, rows: () => copy?.rowCount ?? 0 };
}

// PostgreSQL type ids and the Arrow type each becomes.
const INT8 = 20;
const INT2 = 21;
const INT4 = 23;
const BOOL = 16;
const FLOAT4 = 700;
const FLOAT8 = 701;
const NUMERIC = 1700;
const TIMESTAMPTZ = 1184;

interface Column {
  field: arrow.Field;
  values: unknown[];
}

function arrowTypeOf(oid: number): arrow.DataType {
  switch (oid) {
    case INT8:
      return new arrow.Int64();
    case INT4:
      return new arrow.Int32();
    case INT2:
      return new arrow.Int16();
    case BOOL:
      return new arrow.Bool();
    case FLOAT4:
    case FLOAT8:
    case NUMERIC:
      return new arrow.Float64();
    case TIMESTAMPTZ:
      return new arrow.TimestampMicrosecond("UTC");
    default:
      return new arrow.Utf8();
  }
}

/** Microseconds since the epoch of a timestamptz as PostgreSQL writes it in UTC: 2025-01-31 09:15:00.123456+00. */
export function utcMicroseconds(text: string): bigint {
  const seconds = Date.parse(`${text.slice(0, 10)}T${text.slice(11, 19)}Z`);
  const fraction = /^\.(\d{1,6})/.exec(text.slice(19))?.[1] ?? "";
  return BigInt(seconds) * 1000n + BigInt(fraction.padEnd(6, "0"));
}

// Values as Arrow wants them; the session's TimeZone is UTC (set by the feed run or export).
const PARSERS: Record<number, (text: string) => unknown> = {
  [INT8]: (text) => BigInt(text),
  [NUMERIC]: Number,
  [TIMESTAMPTZ]: utcMicroseconds,
};
const types = { getTypeParser: (oid: number) => PARSERS[oid] ?? ((text: string) => text) };

/**
 * A text column as Arrow's offsets and bytes, encoded in one call: Arrow's own
 * builder (vectorFromArray) encodes value by value, and was most of the
 * worker's time in a Parquet file of long texts. Text that is all ASCII (one
 * byte a character) takes its offsets from the strings' lengths.
 */
function utf8VectorOf(type: arrow.Utf8, values: unknown[]): arrow.Data {
  const length = values.length;
  const nullBitmap = new Uint8Array(Math.ceil(length / 8));
  const valueOffsets = new Int32Array(length + 1);
  let nullCount = 0;
  let characters = 0;
  for (let i = 0; i < length; i++) {
    const value = values[i] as string | null;
    if (value === null) nullCount++;
    else {
      nullBitmap[i >> 3] |= 1 << (i & 7);
      characters += value.length;
    }
    valueOffsets[i + 1] = characters;
  }
  const joined = (values as (string | null)[]).join("");
  const data = Buffer.from(joined, "utf8");
  if (data.length !== characters) {
    for (let i = 0, bytes = 0; i < length; i++) {
      const value = values[i] as string | null;
      if (value !== null) bytes += Buffer.byteLength(value, "utf8");
      valueOffsets[i + 1] = bytes;
    }
  }
  return arrow.makeData({ type, length, nullCount, nullBitmap, valueOffsets, data } as never);
}

function vectorOf(column: Column): arrow.Data {
  const { type } = column.field;
  if (arrow.DataType.isUtf8(type)) return utf8VectorOf(type, column.values);
  if (arrow.DataType.isBool(type)) return arrow.vectorFromArray(column.values, type).data[0];
  const length = column.values.length;
  const nullBitmap = new Uint8Array(Math.ceil(length / 8));
  let nullCount = 0;
  const wide = arrow.DataType.isTimestamp(type) || (arrow.DataType.isInt(type) && type.bitWidth === 64);
  const data = wide ? new BigInt64Array(length) : new (type.ArrayType as Float64ArrayConstructor)(length);
  column.values.forEach((value, i) => {
    if (value === null) {
      nullCount++;
      return;
    }
    nullBitmap[i >> 3] |= 1 << (i & 7);
    (data as unknown as unknown[])[i] = wide ? value : Number(value);
  });
  return arrow.makeData({ type, length, nullCount, nullBitmap, data } as never);
}

/**
 * The query's rows from a cursor, BATCH_ROWS at a time, as arrays of values
 * (parsed by `types`); PostgreSQL makes the next batch while the caller works
 * on this one. The first batch comes even when empty: it carries the columns.
 */
async function* fetchBatches(client: pg.PoolClient, query: string, types: { getTypeParser: (oid: number) => (text: string) => unknown }) {
  await client.query(`declare file_rows no scroll cursor for ${query}`);
  const fetch = () => {
    const fetched = client.query({ text: `fetch ${BATCH_ROWS} from file_rows`, types, rowMode: "array" });
    // Awaited below; until then a failure must not count as unhandled.
    fetched.catch(() => {});
    return fetched;
  };
  let pending = fetch();
  for (;;) {
    const result = await pending;
    const last = result.rows.length < BATCH_ROWS;
    if (!last) pending = fetch();
    yield result as pg.QueryResult<unknown[]>;
    if (last) break;
  }
  await client.query("close file_rows");
}

/** A stream of the buffers `produce` yields, started when first read. */
function lazyStream(produce: () => AsyncGenerator<Buffer>): Readable {
  return Readable.from(produce(), { objectMode: false });
}

// Each value as row_to_json writes it: numbers and booleans bare, timestamps
// in ISO 8601 with a T and a +hh:mm offset, everything else a JSON string.
const JSON_NUMBER_TYPES = new Set([INT8, INT2, INT4, FLOAT4, FLOAT8, NUMERIC]);
const raw = { getTypeParser: () => (text: string) => text };

function jsonValueWriter(oid: number): (text: string) => string {
  if (JSON_NUMBER_TYPES.has(oid)) {
    // row_to_json writes NaN and infinities as strings.
    return (text) => (/^-?\d/.test(text) ? text : JSON.stringify(text));
  }
  if (oid === BOOL) return (text) => (text === "t" ? "true" : "false");
  // PostgreSQL's text in UTC (the session's TimeZone): 2025-01-31 09:15:00.123456+00.
  if (oid === TIMESTAMPTZ) return (text) => `"${text.slice(0, 10)}T${text.slice(11)}:00"`;
  return (text) => JSON.stringify(text);
}

/** One JSON object per line, written in the worker from the cursor's batches (PostgreSQL's row_to_json costs twice its CSV). */
function jsonlFile(client: pg.PoolClient, query: string) {
  let rows = 0;
  async function* lines(): AsyncGenerator<Buffer> {
    let writers: ((text: string) => string)[] | undefined;
    let keys: string[] = [];
    for await (const result of fetchBatches(client, query, raw)) {
      if (!writers) {
        writers = result.fields.map((field) => jsonValueWriter(field.dataTypeID));
        keys = result.fields.map((field) => `${JSON.stringify(field.name)}:`);
      }
      let text = "";
      for (const row of result.rows) {
        let line = "{";
        for (let c = 0; c < row.length; c++) {
          const value = row[c] as string | null;
          line += `${c ? "," : ""}${keys[c]}${value === null ? "null" : writers[c](value)}`;
        }
        text += `${line}}\n`;
      }
      rows += result.rows.length;
      if (text) yield Buffer.from(text, "utf8");
    }
  }
  return { stream: lazyStream(lines), rows: () => rows };
}

/** Fetches the query's rows in batches from a cursor and writes them as Parquet row groups. */
function parquetFile(client: pg.PoolClient, query: string): FormattedFile {
  let rows = 0;
  let schema: arrow.Schema | undefined;
  async function* batches(): AsyncGenerator<parquet.RecordBatch> {
    let first = true;
    for await (const result of fetchBatches(client, query, types)) {
      schema ??= new arrow.Schema(result.fields.map((f) => new arrow.Field(f.name, arrowTypeOf(f.dataTypeID), true)));
      // The first batch goes out even when empty: it carries the columns.
      if (result.rows.length > 0 || first) {
        const columns: unknown[][] = schema.fields.map(() => new Array(result.rows.length));
        result.rows.forEach((row: unknown[], r: number) => row.forEach((value, c) => (columns[c][r] = value)));
        const children = schema.fields.map((field, c) => vectorOf({ field, values: columns[c] }));
        const batch = new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(schema.fields), length: result.rows.length, children }));
        rows += result.rows.length;
        const table = parquet.Table.fromIPCStream(arrow.tableToIPC(new arrow.Table(batch), "stream"));
        yield* table.recordBatches();
        table.free();
      }
      first = false;
    }
  }
  async function* bytes(): AsyncGenerator<Buffer> {
    // Dictionaries only for the agent columns: for long texts, mostly unique,
    // building one costs more time than it saves bytes after zstd.
    let builder = new parquet.WriterPropertiesBuilder()
      .setCompression(parquet.Compression.ZSTD)
      .setMaxRowGroupSize(BATCH_ROWS * 10)
      .setDictionaryEnabled(false);
    for (const column of AGENT_COLUMNS) builder = builder.setColumnDictionaryEnabled(column, true);
    const properties = builder
      .setCreatedBy("prompter")
      .build();
    const parquetStream = await parquet.transformParquetStream(ReadableStream.from(batches()) as unknown as globalThis.ReadableStream, properties);
    for await (const chunk of parquetStream as unknown as AsyncIterable<Uint8Array>) yield Buffer.from(chunk);
  }
  return { stages: [lazyStream(bytes)], extension: "parquet", rows: () => rows };
}
