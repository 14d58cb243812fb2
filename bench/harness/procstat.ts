import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Per-process CPU and memory from /proc (Linux): CPU seconds from utime + stime in
 * /proc/<pid>/stat, resident memory from VmRSS (sampled, for the peak within the window) and
 * VmHWM (the kernel's lifetime peak) in /proc/<pid>/status. With these, a benchmark reports
 * "CPU seconds per request of all cbft processes together" and each process's peak RSS.
 */
let clockTicks: number | undefined;

export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

export interface CpuTimes {
  userSeconds: number;
  systemSeconds: number;
}

export function readCpu(pid: number): CpuTimes | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 (comm) is parenthesised and may contain spaces: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const hz = clockTicksPerSecond();
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  return { userSeconds: Number(rest[11]) / hz, systemSeconds: Number(rest[12]) / hz };
}

export interface Memory {
  rssBytes: number;
  hwmBytes: number;
}

export function readMemory(pid: number): Memory | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM') };
}

export interface WatchedProcess {
  role: string;
  pid: number;
  /** Counted in the system's totals (false for e.g. the load generator itself). */
  measured?: boolean;
  /**
   * Accounting group (e.g. `front` for the cbft processes or the proxy, `service` for the upstream
   * copies): the report sums CPU and takes the peak RSS per group. Default: `front`.
   */
  group?: string;
}

export interface ProcessReport {
  role: string;
  pid: number;
  measured: boolean;
  group: string;
  cpuSeconds: number;
  userSeconds: number;
  systemSeconds: number;
  /** Highest VmRSS seen by the sampler within the window. */
  peakRssBytes: number;
  /** VmHWM at the end: the kernel's peak RSS over the process's whole life. */
  hwmBytes: number;
  exited: boolean;
}

export interface SamplerReport {
  durationSec: number;
  processes: ProcessReport[];
  /** CPU seconds of all `measured` processes together. */
  totalCpuSeconds: number;
  /** Largest single-process peak RSS among `measured` processes. */
  maxPeakRssBytes: number;
  /** Per accounting group (measured processes only): CPU seconds together, largest single-process peak RSS. */
  groups: Record<string, { cpuSeconds: number; maxPeakRssBytes: number; processes: number }>;
}

export class ProcessSampler {
  private readonly start = new Map<number, CpuTimes>();
  private readonly last = new Map<number, CpuTimes>();
  private readonly peak = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private t0 = 0;

  constructor(
    private readonly processes: WatchedProcess[],
    private readonly intervalMs = 200,
  ) {}

  begin(): this {
    this.t0 = performance.now();
    for (const p of this.processes) {
      const cpu = readCpu(p.pid);
      if (cpu) {
        this.start.set(p.pid, cpu);
        this.last.set(p.pid, cpu);
      }
      this.peak.set(p.pid, readMemory(p.pid)?.rssBytes ?? 0);
    }
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  private sample(): void {
    for (const p of this.processes) {
      const cpu = readCpu(p.pid);
      if (cpu) this.last.set(p.pid, cpu);
      const mem = readMemory(p.pid);
      if (mem && mem.rssBytes > (this.peak.get(p.pid) ?? 0)) this.peak.set(p.pid, mem.rssBytes);
    }
  }

  end(): SamplerReport {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    const durationSec = (performance.now() - this.t0) / 1000;
    const processes = this.processes.map((p): ProcessReport => {
      const a = this.start.get(p.pid);
      const b = this.last.get(p.pid);
      const user = a && b ? b.userSeconds - a.userSeconds : 0;
      const system = a && b ? b.systemSeconds - a.systemSeconds : 0;
      const mem = readMemory(p.pid);
      return {
        role: p.role,
        pid: p.pid,
        measured: p.measured ?? true,
        group: p.group ?? 'front',
        cpuSeconds: user + system,
        userSeconds: user,
        systemSeconds: system,
        peakRssBytes: this.peak.get(p.pid) ?? 0,
        hwmBytes: mem?.hwmBytes ?? 0,
        exited: mem === undefined,
      };
    });
    const measured = processes.filter((p) => p.measured);
    const groups: SamplerReport['groups'] = {};
    for (const p of measured) {
      const g = (groups[p.group] ??= { cpuSeconds: 0, maxPeakRssBytes: 0, processes: 0 });
      g.cpuSeconds += p.cpuSeconds;
      g.maxPeakRssBytes = Math.max(g.maxPeakRssBytes, p.peakRssBytes);
      g.processes++;
    }
    return {
      durationSec,
      processes,
      totalCpuSeconds: measured.reduce((s, p) => s + p.cpuSeconds, 0),
      maxPeakRssBytes: Math.max(0, ...measured.map((p) => p.peakRssBytes)),
      groups,
    };
  }
}
