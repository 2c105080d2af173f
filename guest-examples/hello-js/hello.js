// hello-js: the hello example as a JavaScript event function.
//
// Built into a `wasmfc:function` component (world `event-function` of
// host-api/wit/function.wit) by componentize-js (SpiderMonkey, snapshotted
// at build time); scripts/build-script-guests.sh runs:
//
//   componentize-js hello.js --wit host-api/wit -n event-function -d http fetch-event -o hello_js.wasm
//
// The event is a name; "fail" throws (a handled error), "loop..." spins
// forever (a timeout or a Stop ends it).

export const handler = {
  handle(ctx, event) {
    const name = new TextDecoder().decode(event) || "world";
    if (name === "fail") {
      throw "asked to fail";
    }
    if (name.startsWith("loop")) {
      for (;;) {}
    }
    console.log(`hello-js: greeting ${name} (request ${ctx.requestId})`);
    return new TextEncoder().encode(`Hello ${name}!`);
  },
};

export const lifecycle = {
  initialize(ctx) {},
};
