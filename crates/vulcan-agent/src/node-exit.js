'use strict';
// Preloaded into a one-shot node workload by Vulcan's agent (`node -r`). When node emits
// 'exit' (after every listener of the workload's own), its output is already written —
// stdout and stderr to pipes are synchronous in node — so it closes them and writes the
// exit code to fd 3: the agent reports the end then, rather than when the guest's kernel
// has finished tearing the process down (≈ 200 ms under emulation). A fatal exception is
// printed by node after 'exit': then nothing is reported early and the agent waits for
// the process as for any other program.
{
  const fs = require('fs');
  const emit = process.emit;
  let fatal = false;
  process.on('uncaughtExceptionMonitor', () => {
    if (process.listenerCount('uncaughtException') === 0) fatal = true;
  });
  process.emit = function (event, ...args) {
    const result = emit.call(this, event, ...args);
    if (event === 'exit' && !fatal) {
      for (const fd of [1, 2]) {
        try { fs.closeSync(fd); } catch {}
      }
      try {
        fs.writeSync(3, `${args[0] | 0}\n`);
        fs.closeSync(3);
      } catch {}
    }
    return result;
  };
}
