--! Previous: sha1:cc596f674a38ca197c1a598ccf4b5cac96664daa
--! Hash: sha1:79987b1ca6baa3a14d5e7e81da036955b458b4b4
--! Message: export object keys

-- Where a finished export's file is when EXPORT_STORAGE=s3: its key in S3_BUCKET
-- (S3_PREFIX included), recorded as written, so changing S3_PREFIX later does not
-- lose earlier exports. Null for files in the worker's EXPORT_DIR (file_name).
alter table app_public.exports add column if not exists object_key text;

-- These gain the object key (sql/functions recreates them): a changed argument
-- list or result type would otherwise leave the old version beside the new one.
drop function if exists app_private.export_succeeded(bigint, int, text, bigint, bigint, text, bigint);
drop function if exists app_private.delete_expired_exports(int);
