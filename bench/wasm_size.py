"""Code size of a wasm module by crate, from its name section (the wasm before wasm-opt strips it).

    python3 bench/wasm_size.py $CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/geonoise.wasm

Prints the code section's total and the 30 largest crates (by the first path segment of each
function's mangled name).
"""
import sys, re, collections
data=open(sys.argv[1],'rb').read()
def leb(b,i):
    r=s=0
    while True:
        x=b[i]; i+=1; r|=(x&0x7f)<<s; s+=7
        if x<0x80: return r,i
i=8; secs=[]
nimports_f=0; code=None; names={}
while i<len(data):
    sid=data[i]; i+=1; size,i=leb(data,i); start=i; i+=size
    secs.append((sid,start,size))
for sid,start,size in secs:
    if sid==2:
        n,j=leb(data,start)
        for _ in range(n):
            l,j=leb(data,j); j+=l; l,j=leb(data,j); j+=l
            kind=data[j]; j+=1
            if kind==0: _,j=leb(data,j); nimports_f+=1
            elif kind==1: j+=1; fl,j=leb(data,j); _,j=leb(data,j); 
            elif kind==2:
                fl,j=leb(data,j); _,j=leb(data,j)
                if fl&1: _,j=leb(data,j)
            elif kind==3: j+=2
    if sid==10:
        n,j=leb(data,start); code=[]
        for k in range(n):
            sz,j2=leb(data,j); code.append(j2-j+sz); j=j2+sz
    if sid==0:
        l,j=leb(data,start); nm=data[j:j+l]; j+=l
        if nm==b'name':
            end=start+size
            while j<end:
                sub=data[j]; j+=1; sz,j=leb(data,j); e=j+sz
                if sub==1:
                    n,k=leb(data,j)
                    for _ in range(n):
                        idx,k=leb(data,k); l,k=leb(data,k); names[idx]=data[k:k+l].decode('utf8','replace'); k+=l
                j=e
tot=sum(code)
print("total code", tot, "sections", [(s, sz) for s,_,sz in secs])
agg=collections.Counter()
for k,sz in enumerate(code):
    nm=names.get(k+nimports_f,'?')
    # crate = first path segment, strip generics
    m2=re.match(r'_ZN(\d+)',nm)
    if m2:
        L=int(m2.group(1)); st=m2.end(); key=nm[st:st+L]
        if key.startswith('_$LT$'):
            mm=re.match(r'_\$LT\$(?:\$RF\$)?(?:mut\$u20\$)?([a-zA-Z0-9_]+)',key); key=mm.group(1) if mm else key
    else:
        m=re.match(r'[<]*(?:&?(?:mut )?)?([a-zA-Z0-9_]+)',nm); key=m.group(1) if m else nm
    agg[key]+=sz
for c,sz in agg.most_common(30): print(f"{sz/1e6:7.2f} MB {c}")
