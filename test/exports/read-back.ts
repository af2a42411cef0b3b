// Reads an export's file back the way its consumer would, into rows of text
// comparable with the oracle's CSV rows (./oracle.ts): CSV with a CSV parser,
// JSONL and Parquet with DuckDB. Timestamps become the exports' ISO text (from
// DuckDB's epoch microseconds), nulls empty cells, and the numbers of numeric
// columns their shortest decimal text (on both sides), so 41.0, 41 and
// 41.000000 compare equal while 41.1 and 41 do not.
import { DuckDBInstance } from "@duckdb/node-api";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { exportTime } from "./oracle.ts";
import { parseCsv, unzip } from "./support.ts";

const NUMERIC_COLUMN = /_score$|^(clarity|specificity|actionability|structure|context_use|total|win_rate|avg_score)$/;

/** "41.500" -> "41.5", "41.0" -> "41"; anything else as it is. */
export function shortestDecimal(cell: string): string {
  return /^-?\d+\.\d+$/.test(cell) ? cell.replace(/0+$/, "").replace(/\.$/, "") : cell;
}

/** The rows (header first) with their numeric columns' cells in shortest decimal text. */
export function comparable(rows: string[][]): string[][] {
  const numeric = rows[0].map((name) => NUMERIC_COLUMN.test(name));
  return rows.map((row, r) => (r === 0 ? row : row.map((cell, c) => (numeric[c] ? shortestDecimal(cell) : cell))));
}

/** The file's rows by the file's (or each zip entry's) name without extension. */
export async function readBack(fileName: string, data: Buffer): Promise<Map<string, string[][]>> {
  if (fileName.endsWith(".zip")) {
    const files = new Map<string, string[][]>();
    for (const [name, entry] of unzip(data)) files.set(name.replace(/\..*$/, ""), await readOne(name, entry));
    return files;
  }
  const kind = path.basename(fileName).replace(/-\d+-\d+-[0-9a-f]{8}\..*$/, "");
  return new Map([[kind, await readOne(fileName, data)]]);
}

async function readOne(fileName: string, data: Buffer): Promise<string[][]> {
  const plain = fileName.endsWith(".gz") ? gunzipSync(data) : data;
  if (/\.csv(\.gz)?$/.test(fileName)) return comparable(parseCsv(plain));
  const dir = await mkdtemp(path.join(tmpdir(), "prompter-read-back-"));
  const file = path.join(dir, fileName.endsWith(".parquet") ? "file.parquet" : "file.jsonl");
  await writeFile(file, plain);
  const duck = await DuckDBInstance.create(":memory:");
  const connection = await duck.connect();
  try {
    const source = file.endsWith(".parquet") ? `read_parquet('${file}')` : `read_json('${file}', format = 'newline_delimited')`;
    const columns = (await connection.runAndReadAll(`describe select * from ${source}`)).getRowObjectsJson();
    const cells = columns.map(({ column_name: name, column_type: type }) =>
      String(type).startsWith("TIMESTAMP") ? `epoch_us("${name}")::varchar` : `"${name}"::varchar`);
    const rows = (await connection.runAndReadAll(`select ${cells.join(", ")} from ${source}`)).getRows();
    const isTime = columns.map(({ column_type: type }) => String(type).startsWith("TIMESTAMP"));
    return comparable([
      columns.map(({ column_name: name }) => String(name)),
      ...rows.map((row) => row.map((cell, c) => (cell === null ? "" : isTime[c] ? exportTime(String(cell)) : String(cell)))),
    ]);
  } finally {
    connection.closeSync();
    await rm(dir, { recursive: true, force: true });
  }
}
