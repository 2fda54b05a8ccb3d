//! A team of threads that stays awake for one short burst of work: decoding one token.
//!
//! Decoding a token on the host is a few dozen small sections (a block's projections, the LM head), each reading
//! a slice of the weights from memory, which one core reads at a fraction of the machine's bandwidth, separated by
//! serial eager tensor operations of a few microseconds. Splitting each section over rayon's pool costs a wake-up
//! of the other threads per section (they sleep between sections, and waking one is a system call and a context
//! switch, tens of microseconds on a VM), which measured slower than one core. Within [`run`] the other threads
//! of the pool instead spin, waiting for the next section, so that [`split`] hands out work in well under a
//! microsecond.
//!
//! Spinning burns the cores it holds, so a team lives exactly as long as one token step; outside a team, and in
//! wasm (no threads there), [`split`] falls back to rayon or to a loop. Work is claimed task by task from an atomic
//! counter, and the caller works too: a section finishes even when a helper has not arrived yet (its pool thread
//! was busy elsewhere), so nothing waits on a thread that might never come.

#[cfg(not(target_arch = "wasm32"))]
use std::any::Any;
#[cfg(not(target_arch = "wasm32"))]
use std::cell::Cell;
#[cfg(not(target_arch = "wasm32"))]
use std::panic::AssertUnwindSafe;
#[cfg(not(target_arch = "wasm32"))]
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

/// One section being worked on: `f(task)` for every `task < n`, each claimed once from `next`.
#[cfg(not(target_arch = "wasm32"))]
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    n: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    /// The first panic of a task, re-raised by the caller once no thread uses the job any more.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

#[cfg(not(target_arch = "wasm32"))]
impl Job<'_> {
    /// Claims and runs tasks until none is left. A task that panics still counts as done (so that the caller does
    /// not wait for it forever); its panic is kept for the caller.
    fn work(&self) {
        loop {
            let task = self.next.fetch_add(1, SeqCst);
            if task >= self.n {
                return;
            }
            if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| (self.f)(task))) {
                self.panic.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(payload);
            }
            self.done.fetch_add(1, SeqCst);
        }
    }
}

/// The state the caller and its helpers share while a team lives.
#[cfg(not(target_arch = "wasm32"))]
struct Team {
    /// The current section (a `Job` on the caller's stack), or null between sections.
    job: AtomicPtr<Job<'static>>,
    /// Helpers that may be reading `job` right now: the caller frees a section only when this is zero.
    reading: AtomicUsize,
    /// Set when the burst is over: helpers return.
    finished: AtomicBool,
    /// Workers in the team, the caller included: the pool's threads.
    size: usize,
}

#[cfg(not(target_arch = "wasm32"))]
impl Team {
    /// A helper's life: spin until the burst is over, joining every section published meanwhile.
    fn help(&self) {
        while !self.finished.load(SeqCst) {
            // Between sections, only loads (no writes to the line the caller publishes on).
            if self.job.load(SeqCst).is_null() {
                std::hint::spin_loop();
                continue;
            }
            // Announce the read, then look again: the caller, having unpublished a job, waits for `reading` to be
            // zero, so a job seen by the second load is still alive until the decrement (sequentially consistent
            // order: either this increment precedes the caller's check, or that load follows its unpublishing and
            // sees null).
            self.reading.fetch_add(1, SeqCst);
            let job = self.job.load(SeqCst);
            if !job.is_null() {
                // SAFETY: see above — the job outlives this use; `work` does not unwind.
                unsafe { &*job }.work();
            }
            self.reading.fetch_sub(1, SeqCst);
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    /// The team the current thread leads, if any.
    static LEADING: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` on a thread of rayon's pool with every other pool thread spinning beside it, ready for [`split`];
/// returns what `f` returned. Meant for a burst of a few milliseconds (one decoding step): the helpers hold their
/// cores until `f` returns. Without threads (wasm) this is `f()`, and nothing calls it there.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(target_arch = "wasm32")]
    return f();
    #[cfg(not(target_arch = "wasm32"))]
    {
        let size = rayon::current_num_threads().max(1);
        let team = Team { job: AtomicPtr::new(std::ptr::null_mut()), reading: AtomicUsize::new(0), finished: AtomicBool::new(false), size };
        rayon::scope(|s| {
            for _ in 1..size {
                s.spawn(|_| team.help());
            }
            // Clears the mark and releases the helpers even if `f` panics, so that the scope can end.
            struct Lead<'a>(&'a Team, *const Team);
            impl Drop for Lead<'_> {
                fn drop(&mut self) {
                    LEADING.with(|l| l.set(self.1));
                    self.0.finished.store(true, SeqCst);
                }
            }
            let _lead = Lead(&team, LEADING.with(|l| l.replace(&team)));
            f()
        })
    }
}

/// Threads [`split`] spreads tasks over on this thread: the team's inside [`run`], else the pool's (1 in wasm).
/// Callers choose how many tasks to cut their work into with it.
pub fn workers() -> usize {
    #[cfg(target_arch = "wasm32")]
    return 1;
    #[cfg(not(target_arch = "wasm32"))]
    {
        let team = LEADING.with(|l| l.get());
        if team.is_null() {
            rayon::current_num_threads().max(1)
        } else {
            // SAFETY: a non-null mark points at the team of the enclosing `run` on this thread, alive until it
            // returns (and the mark is cleared before).
            unsafe { &*team }.size
        }
    }
}

/// Runs `f(task)` for every `task < n`, each once, and returns when all have: over the team when this thread
/// leads one ([`run`]), else over rayon's pool natively, else in order; a single task on this thread, without
/// handing it to anyone. A panic in a task is raised here once every task has ended.
pub fn split(n: usize, f: impl Fn(usize) + Sync) {
    #[cfg(target_arch = "wasm32")]
    return (0..n).for_each(f);
    #[cfg(not(target_arch = "wasm32"))]
    {
        if n <= 1 {
            return (0..n).for_each(f);
        }
        let team = LEADING.with(|l| l.get());
        if team.is_null() {
            use rayon::prelude::*;
            return (0..n).into_par_iter().for_each(&f);
        }
        // SAFETY: as in `workers`.
        let team = unsafe { &*team };
        let job = Job { f: &f, n, next: AtomicUsize::new(0), done: AtomicUsize::new(0), panic: Mutex::new(None) };
        // SAFETY (of the lifetime cast): the job is unpublished, and no helper still reads it, before it is dropped
        // (`work` catches panics, so nothing unwinds past the waits below).
        team.job.store((&job as *const Job<'_>).cast::<Job<'static>>().cast_mut(), SeqCst);
        job.work();
        while job.done.load(SeqCst) < n {
            std::hint::spin_loop();
        }
        team.job.store(std::ptr::null_mut(), SeqCst);
        while team.reading.load(SeqCst) > 0 {
            std::hint::spin_loop();
        }
        if let Some(payload) = job.panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
            std::panic::resume_unwind(payload);
        }
    }
}

/// Runs `f(i, item)` for every item, each once, as [`split`] does (a way to hand each task its own `&mut` part).
pub fn for_each<T: Send>(items: Vec<T>, f: impl Fn(usize, T) + Sync) {
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|item| Mutex::new(Some(item))).collect();
    split(slots.len(), |i| {
        let item = slots[i].lock().unwrap_or_else(|e| e.into_inner()).take().expect("each task runs once");
        f(i, item)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every task runs exactly once.
    fn check_split(n: usize) {
        let runs: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        split(n, |task| {
            std::hint::black_box((0..200).sum::<usize>());
            runs[task].fetch_add(1, SeqCst);
        });
        assert!(runs.iter().all(|r| r.load(SeqCst) == 1), "a task did not run exactly once");
    }

    #[test]
    fn sections_run_every_task_once_inside_and_outside_a_team() {
        check_split(0);
        check_split(37);
        let (size, leading) = run(|| {
            for n in [0, 1, 2, 5, 64, 1000] {
                check_split(n);
            }
            let mut parts = vec![0usize; 10];
            for_each(parts.chunks_mut(3).collect(), |i, part| part.fill(i + 1));
            assert_eq!(parts, [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]);
            (workers(), !LEADING.with(|l| l.get()).is_null())
        });
        assert_eq!(size, rayon::current_num_threads().max(1));
        assert!(leading, "run did not mark its thread");
        assert!(LEADING.with(|l| l.get()).is_null(), "the mark outlived the team");
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_and_the_team_still_ends() {
        assert_eq!(run(|| 42), 42);
        for failing in [0, 3] {
            let caught = std::panic::catch_unwind(|| run(|| split(4, |task| assert!(task != failing, "task {task} fails"))));
            assert!(caught.is_err());
        }
        // The pool is usable again: a second team starts and ends.
        assert_eq!(run(workers), rayon::current_num_threads().max(1));
    }
}
