-- Whoever may queue an export takes their own rate-limit lock through the
-- trigger (which runs as them); nobody else may call the lock or enforcement functions.
grant execute on function app_hidden.lock_export_rate(bigint) to app_user, app_reader;
