import { ConfigurationError } from '../errors.js'
import { readModelSpec, type ReadModel, type ReadModelRegistration } from './model.js'
import { ReadModelRunner, type ProjectionView, type ReadSideContext } from './runner.js'

/** The read models of one application: their runners, started and stopped together. */
export class ReadSide {
  private readonly runners = new Map<unknown, ReadModelRunner>()
  private readonly running: ReadModelRunner[] = []
  private readonly started: ReadModelRunner[] = []

  constructor(entries: ReadonlyArray<ReadModel | ReadModelRegistration>, context: ReadSideContext) {
    if (!Array.isArray(entries)) throw new ConfigurationError('projections must be a list of projection classes or definitions')
    const names = new Set<string>()
    for (const entry of entries) {
      const registration: ReadModelRegistration =
        typeof entry === 'object' && entry !== null && 'projection' in entry ? entry : { projection: entry as ReadModel }
      const spec = readModelSpec(registration.projection)
      if (names.has(spec.name)) {
        throw new ConfigurationError(`two read models are named '${spec.name}'; names must be unique (they name consumer groups and keys)`)
      }
      names.add(spec.name)
      const runner = new ReadModelRunner(spec, context)
      this.runners.set(registration.projection, runner)
      if (registration.run ?? true) this.running.push(runner)
    }
  }

  /** Starts every read model this process runs; stops those already started when one fails. */
  async start(): Promise<void> {
    try {
      for (const runner of this.running) {
        await runner.start()
        this.started.push(runner)
      }
    } catch (error) {
      await this.stop()
      throw error
    }
  }

  /** Stops every started read model, finishing the batches in flight. */
  async stop(): Promise<void> {
    const started = this.started.splice(0)
    await Promise.all(started.map((r) => r.stop()))
  }

  /** Every registered read model's view, and whether this process runs it. */
  list(): Array<{ view: ProjectionView; runs: boolean }> {
    return [...this.runners.values()].map((runner) => ({ view: runner.view, runs: this.running.includes(runner) }))
  }

  /** Offsets each read model run here still has to read; one whose status cannot be read now is left out. */
  async lags(): Promise<Array<{ projection: string; lag: number }>> {
    const lags = await Promise.all(
      this.started.map((runner) =>
        runner.view.status().then(
          (status) => [{ projection: runner.spec.name, lag: status.lag }],
          () => [],
        ),
      ),
    )
    return lags.flat()
  }

  /** The view of a registered read model. */
  view(model: ReadModel): ProjectionView {
    const runner = this.runners.get(model)
    if (!runner) {
      const name = typeof model === 'function' ? model.name : (model as { options?: { name?: string } })?.options?.name
      throw new ConfigurationError(`${String(name)} is not registered; add it to createEsk({ projections })`)
    }
    return runner.view
  }
}
