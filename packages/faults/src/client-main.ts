/** A client process of a fault run: `node client-main.js <RunConfig JSON> <ClientPlan JSON>`. */
import type { RunConfig } from './config.js'
import { runClient, type ClientPlan } from './client.js'

// kafkajs can let a connection reset escape as an unhandled rejection while the broker restarts
// (seen once, in the `stack` scenario, under heavy load). It is logged to the client's log with
// the code ESK_UNHANDLED_REJECTION instead of ending the client, as docs/operations.md advises
// applications to do; the checker still verifies every command the client sent.
process.on('unhandledRejection', (error) => {
  process.stderr.write(`ESK_UNHANDLED_REJECTION ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
})

await runClient(JSON.parse(process.argv[2] ?? '{}') as RunConfig, JSON.parse(process.argv[3] ?? '{}') as ClientPlan)
