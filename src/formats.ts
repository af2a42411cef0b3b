// The file formats of feed runs and exports (and their streams): each turns a
// SELECT, read on the run's or export's connection inside its snapshot, into
// the stages of one file. (Exports write CSV with their own stream, which adds
// Excel's BOM and counts rows as they pass: src/tasks/export.ts.)
//   csv     COPY ... (FORMAT csv, HEADER), as exports write it; gzip optional.
//   jsonl   one JSON object per line, as row_to_json writes it (src/json-lines.ts);
//           gzip optional.
//   parquet typed Arrow columns (src/arrow-batch.ts: integers, timestamptz as
//           UTC microseconds, numerics as doubles, text, booleans), written by
//           parquet-wasm in zstd-compressed row groups as they come.
// JSONL and Parquet are made in the worker from the same COPY as CSV, read
// field by field as bytes (src/copy-csv.ts): PostgreSQL's row_to_json costs
// twice its CSV, and rows parsed into JavaScript values (node-postgres) cost
// the worker twice the CSV export's time. Memory holds a COPY chunk, or a
// batch of rows' Arrow columns, at a time, whatever the number of rows.
import * as arrow from "apache-arrow";
import * as parquet from "parquet-wasm";
import { Readable, type Transform } from "node:stream";
import { ReadableStream } from "node:stream/web";
import { constants, createGzip } from "node:zlib";
import type pg from "pg";
import { to as copyTo, type CopyToStreamQuery } from "pg-copy-streams";
import { ArrowBatch, arrowTypeOf } from "./arrow-batch.ts";
import { CsvRows } from "./copy-csv.ts";
import { JsonLines } from "./json-lines.ts";

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

/** Rows per Arrow batch (ten to a Parquet row group): a few MB of memory at most. */
const BATCH_ROWS = 10_000;

export function formatFile(client: pg.PoolClient, query: string, format: FileFormat, options: FormatOptions): FormattedFile {
  if (format === "parquet") return parquetFile(client, query);
  const file = format === "csv" ? csvFile(client, query) : jsonlFile(client, query);
  // JSON lines, two thirds longer than the same rows' CSV, at gzip's default
  // level took the worker 2.3x the CSV export's time at 1M prompts (at level 1,
  // 1.3-1.6x, for a file 60% larger: 34 MB instead of 21 MB).
  const gzip = () => createGzip({ level: format === "jsonl" ? constants.Z_BEST_SPEED : constants.Z_DEFAULT_COMPRESSION });
  return {
    stages: options.gzip ? [file.stream, gzip()] : [file.stream],
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

/**
 * The query's columns (name and type) and its rows as COPY's CSV chunks,
 * without a header; the COPY starts when first read.
 */
async function copyCsv(client: pg.PoolClient, query: string) {
  const { fields } = await client.query(`select * from (${query}) as file_rows limit 0`);
  async function* chunks(): AsyncGenerator<Buffer> {
    const copy = client.query(copyTo(`COPY (${query}) TO STDOUT WITH (FORMAT csv)`));
    // A COPY cut short fails again when its connection closes, after the reading stopped.
    copy.on("error", () => {});
    yield* copy as AsyncIterable<Buffer>;
  }
  return { columns: fields.map((field) => ({ name: field.name, dataTypeID: field.dataTypeID })), chunks: chunks() };
}

/** A stream of the buffers `produce` yields, started when first read. */
function lazyStream(produce: () => AsyncGenerator<Buffer>): Readable {
  return Readable.from(produce(), { objectMode: false });
}

function truncated(): Error {
  return new Error("The COPY ended in the middle of a row.");
}

function jsonlFile(client: pg.PoolClient, query: string) {
  let rows = 0;
  async function* lines(): AsyncGenerator<Buffer> {
    const { columns, chunks } = await copyCsv(client, query);
    const csv = new CsvRows(columns.length);
    const json = new JsonLines(columns);
    for await (const chunk of chunks) {
      csv.push(chunk, (bytes, fields) => {
        json.row(bytes, fields);
        rows++;
      });
      const written = json.take();
      if (written.length > 0) yield written;
    }
    if (csv.pending) throw truncated();
  }
  return { stream: lazyStream(lines), rows: () => rows };
}

/** The query's rows as Parquet row groups, built BATCH_ROWS rows at a time. */
function parquetFile(client: pg.PoolClient, query: string): FormattedFile {
  let rows = 0;
  async function* batches(): AsyncGenerator<parquet.RecordBatch> {
    const { columns, chunks } = await copyCsv(client, query);
    const schema = new arrow.Schema(columns.map((column) => new arrow.Field(column.name, arrowTypeOf(column.dataTypeID), true)));
    const oids = columns.map((column) => column.dataTypeID);
    const csv = new CsvRows(columns.length);
    let batch = new ArrowBatch(schema, oids, BATCH_ROWS);
    const full: ArrowBatch[] = [];
    let written = 0;
    const toParquet = function* (done: ArrowBatch) {
      const table = parquet.Table.fromIPCStream(arrow.tableToIPC(new arrow.Table(done.finish()), "stream"));
      yield* table.recordBatches();
      table.free();
      written++;
    };
    for await (const chunk of chunks) {
      csv.push(chunk, (bytes, fields) => {
        batch.add(bytes, fields);
        rows++;
        if (batch.length === BATCH_ROWS) {
          full.push(batch);
          batch = new ArrowBatch(schema, oids, BATCH_ROWS);
        }
      });
      for (const done of full.splice(0)) yield* toParquet(done);
    }
    if (csv.pending) throw truncated();
    // The last rows; and a file of no rows still has one batch: it carries the columns.
    if (batch.length > 0 || written === 0) yield* toParquet(batch);
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
