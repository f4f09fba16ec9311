// TEMPORARY verifier experiment; deleted before handing back.
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf};
fn main() {
    let data = std::fs::read("/tmp/calib/t2.bpf.o").unwrap();
    let btf = Btf::from_sys_fs().unwrap();
    let mut ebpf = Ebpf::load(&data).unwrap();
    let names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_owned()).collect();
    for n in &names {
        let p: &mut BtfTracePoint = ebpf.program_mut(n).unwrap().try_into().unwrap();
        match p.load("sk_data_ready", &btf) {
            Ok(()) => println!("{n}: ok"),
            Err(e) => println!("{n}: {e:?}"),
        }
    }
}
