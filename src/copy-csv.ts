// Reading PostgreSQL's own CSV (COPY ... TO STDOUT WITH (FORMAT csv)) field by
// field as raw bytes, for the formats written from it (src/formats.ts): the
// worker reads a COPY stream at about the speed PostgreSQL writes it, where
// turning every row into JavaScript values (node-postgres' row parsing, then
// strings to encode again) cost it twice the CSV export's time.
// PostgreSQL's CSV: fields separated by commas, rows by \n; a field is quoted
// when it holds a comma, a quote, \r or \n, or is the empty string (an
// unquoted empty field is NULL), and a quote inside is doubled.

/** One field of a row: bytes [start, end) of `bytes`, quoted as CSV quotes, or NULL. */
export interface Field {
  start: number;
  end: number;
  quoted: boolean;
  null: boolean;
}

const COMMA = 0x2c;
const QUOTE = 0x22;
const NEWLINE = 0x0a;

/**
 * Splits CSV chunks into rows of `columns` fields; `onRows` gets each chunk's
 * complete rows (the fields' bytes stay valid until it returns). A row cut by
 * a chunk's end waits for the next chunk.
 */
export class CsvRows {
  private carry: Buffer | undefined;
  private readonly fields: Field[];
  private readonly columns: number;

  constructor(columns: number) {
    this.columns = columns;
    this.fields = Array.from({ length: columns }, () => ({ start: 0, end: 0, quoted: false, null: false }));
  }

  /** Calls `row` for each complete row in the chunk, with the buffer the fields point into. */
  push(chunk: Buffer, row: (bytes: Buffer, fields: Field[]) => void): void {
    let from = 0;
    if (this.carry) {
      // The row the last chunk cut, finished on a buffer of its own that
      // takes as little of this chunk as it needs: copying every chunk behind
      // the rest of a row cost more in garbage collection than the parsing.
      let taken = Math.min(chunk.length, 1024);
      for (;;) {
        const joined = Buffer.concat([this.carry, chunk.subarray(0, taken)]);
        const end = this.rows(joined, 0, row, 1);
        if (end > 0) {
          from = end - this.carry.length;
          this.carry = undefined;
          break;
        }
        if (taken === chunk.length) {
          this.carry = joined;
          return;
        }
        taken = Math.min(chunk.length, taken * 4);
      }
    }
    const end = this.rows(chunk, from, row, Infinity);
    if (end < chunk.length) this.carry = chunk.subarray(end);
  }

  /** Parses up to `limit` rows from `position`; returns where the first row not whole starts. */
  private rows(bytes: Buffer, position: number, row: (bytes: Buffer, fields: Field[]) => void, limit: number): number {
    const length = bytes.length;
    const fields = this.fields;
    for (let parsed = 0; parsed < limit && position < length; parsed++) {
      const rowStart = position;
      for (let column = 0; column < this.columns; column++) {
        const field = fields[column];
        if (position < length && bytes[position] === QUOTE) {
          // A quoted field ends at a quote that is not doubled.
          let end = position + 1;
          for (;;) {
            end = bytes.indexOf(QUOTE, end);
            if (end < 0 || end + 1 >= length) return rowStart;
            if (bytes[end + 1] !== QUOTE) break;
            end += 2;
          }
          field.start = position + 1;
          field.end = end;
          field.quoted = true;
          field.null = false;
          position = end + 1;
        } else {
          let end = position;
          while (end < length && bytes[end] !== COMMA && bytes[end] !== NEWLINE) end++;
          if (end >= length) return rowStart;
          field.start = position;
          field.end = end;
          field.quoted = false;
          field.null = end === position;
          position = end;
        }
        const separator = column === this.columns - 1 ? NEWLINE : COMMA;
        if (bytes[position] !== separator) {
          throw new Error(`COPY's CSV has a row of other than ${this.columns} fields at byte ${position}.`);
        }
        position++;
      }
      row(bytes, fields);
    }
    return position;
  }

  /** Whether a row was left unfinished (the stream ended mid-row). */
  get pending(): boolean {
    return this.carry !== undefined && this.carry.length > 0;
  }
}

/** A field's value as bytes: a quoted field's doubled quotes made single. */
export function unquoted(bytes: Buffer, field: Field): Buffer {
  const raw = bytes.subarray(field.start, field.end);
  if (!field.quoted || raw.indexOf(QUOTE) < 0) return raw;
  const out = Buffer.allocUnsafe(raw.length);
  let length = 0;
  for (let i = 0; i < raw.length; i++) {
    out[length++] = raw[i];
    if (raw[i] === QUOTE) i++;
  }
  return out.subarray(0, length);
}
