//! Prints the capability facts of this host (a manual aid; `skewscope doctor`
//! is the product's view).
fn main() {
    println!("{:#?}", skewscope_probes::kernel_facts());
    let mut caps = skewscope_probes::check_raw_tracepoints(skewscope_probes::PROBE_TRACEPOINTS);
    caps.extend(skewscope_probes::check_raw_tracepoints(&[
        "irq:no_such_tp",
        "irq:",
    ]));
    caps.push(skewscope_probes::check_fentry("reuseport_select_sock"));
    caps.push(skewscope_probes::check_fentry("no_such_function_xyz"));
    caps.push(skewscope_probes::check_kprobe());
    caps.push(skewscope_probes::check_sk_reuseport_load());
    for cap in caps {
        println!("{:<40} {:<5} {}", cap.name, cap.available, cap.detail);
    }
}
