/** A client process of a fault run: `node client-main.js <RunConfig JSON> <ClientPlan JSON>`. */
import type { RunConfig } from './config.js'
import { runClient, type ClientPlan } from './client.js'

await runClient(JSON.parse(process.argv[2] ?? '{}') as RunConfig, JSON.parse(process.argv[3] ?? '{}') as ClientPlan)
