// The test cluster's roles. Only the superuser (a DBA) makes TEST_OWNER; every
// database of a test run belongs to it, and each gets its own authenticator.

/** The owner every test database belongs to: CREATEROLE and CREATEDB, nothing more. */
export const TEST_OWNER = "prompter_test_owner";
/** The password of the test owner and of every test database's authenticator. */
export const TEST_PASSWORD = "prompter-test-password-0123456789";

/** The authenticator of a test database: a login of its own per database, as in production. */
export function authenticatorOf(database: string): string {
  return `${database}_auth`;
}
