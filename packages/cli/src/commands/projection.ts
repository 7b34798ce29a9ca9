import { ConfigurationError, type RebuildReport as ProjectionRebuildReport } from '@esk/core'
import { projectionName, registered } from '../config.js'
import type { CliContext } from '../context.js'

/** What `esk projection reset|rebuild` did. */
export interface ProjectionReport {
  name: string
  action: 'reset' | 'rebuild'
  /** For a rebuild: the generation swapped in, the events applied, how long it took. */
  rebuild?: ProjectionRebuildReport
}

/** Options of {@link projectionRebuild}. */
export interface ProjectionRebuildOptions {
  /** Longest the rebuild may take, ms. Default one hour. */
  timeoutMs?: number
  /** Called as the new generation catches up: events applied, and events still to read. */
  onProgress?: (progress: { events: number; lag: number }) => void
}

/**
 * Drops a read model's view and positions; every process running it starts again from the first
 * event (readers see a partial view until it has caught up). See `ProjectionView.reset`.
 */
export async function projectionReset(context: CliContext, name: string): Promise<ProjectionReport> {
  const model = find(context, name)
  const app = await context.app()
  await app.projection(model).reset()
  return { name, action: 'reset' }
}

/**
 * Builds a new generation of a read model beside the live one and swaps it in once caught up
 * (blue/green); the processes running it continue the new generation. See `ProjectionView.rebuild`.
 */
export async function projectionRebuild(context: CliContext, name: string, options: ProjectionRebuildOptions = {}): Promise<ProjectionReport> {
  const model = find(context, name)
  const app = await context.app()
  const unsubscribe = app.on('projection', (o) => {
    if (o.projection === name && o.kind === 'rebuild') options.onProgress?.({ events: o.events, lag: o.lag })
  })
  try {
    const report = await app.projection(model).rebuild(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {})
    return { name, action: 'rebuild', rebuild: report }
  } finally {
    unsubscribe()
  }
}

function find(context: CliContext, name: string): ReturnType<typeof registered> {
  const entry = context.config.projections.find((p) => projectionName(p) === name)
  if (!entry) {
    const known = context.config.projections.map(projectionName).join(', ') || 'none'
    throw new ConfigurationError(`no read model named '${name}' is configured (known: ${known}); list it in projections of esk.config.mjs`)
  }
  return registered(entry)
}
